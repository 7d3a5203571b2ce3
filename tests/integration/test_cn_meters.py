"""DL/T 645 and CJ/T 188 meters: estate-sim serves a Modbus RTU bus, a DL/T
645-2007 bus and a CJ/T 188 bus on pseudo-terminals (2400 8E1 for the two
national protocols) and estate-gw polls all three. Every reading carries what
the simulator serves on the wire (its value rounded to the data item's BCD
decimals); reverse running on a DL/T 645 meter raises reverse_energy; flow in
a vacant unit on a CJ/T 188 meter raises vacant_flow and closes its valve,
read back as closed. Faults: a silent and a garbled DL/T 645 meter do not
stop the rest of their bus; a valve that reports abnormal after the close
escalates the incident to critical with a critical work order."""
import json
import math
import os
import shutil
import tempfile
import time
import unittest

from harness import Stack, wait_for

# Steps of the items the models read (BCD decimals): the wire's resolution.
STEP = {"energy_import_kwh": 0.01, "energy_export_kwh": 0.01, "power_w": 0.1,
        "voltage_v": 0.1, "current_a": 0.001, "volume_m3": 0.01}

DL_METERS = (("E-DL-1", "000000000101", "2-101"), ("E-DL-2", "000000000102", "2-102"),
             ("E-DL-3", "000000000103", "2-103"))
CJ_METERS = (("W-CJ-1", "10000000000201", "2-201"), ("W-CJ-2", "10000000000202", "2-202"),
             ("W-CJ-3", "10000000000203", "2-203"))
VACANT = {"2-201", "2-202"}


def write_site(workdir):
    tty = os.path.join(workdir, "tty")
    links = {name: os.path.join(tty, name) for name in ("mb", "dl", "cj")}
    units = [u for _, _, u in DL_METERS + CJ_METERS]
    units_text = ",\n".join(
        f'  {{ id = "{u}"; building = "2"; occupancy = "{"vacant" if u in VACANT else "occupied"}"; }}'
        for u in units)
    gw_meters = ['  { id = "E-MB-1"; bus = "mb"; slave = 1; driver = "sdm120"; category = "unit";'
                 ' unit = "2-101"; }']
    sim_devices = ['  { id = "E-MB-1"; endpoint = "mb"; slave = 1; driver = "sdm120";'
                   ' category = "unit"; unit = "2-101"; occupied = true; }']
    for mid, address, unit in DL_METERS:
        gw_meters.append(f'  {{ id = "{mid}"; bus = "dl"; address = "{address}";'
                         f' driver = "dlt645_2007_1p"; category = "unit"; unit = "{unit}"; }}')
        sim_devices.append(f'  {{ id = "{mid}"; endpoint = "dl"; address = "{address}";'
                           f' driver = "dlt645_2007_1p"; category = "unit"; unit = "{unit}";'
                           f' occupied = true; import_kwh = 1234.5; }}')
    for mid, address, unit in CJ_METERS:
        vacant = unit in VACANT
        gw_meters.append(f'  {{ id = "{mid}"; bus = "cj"; address = "{address}";'
                         f' driver = "cjt188_cold_water"; category = "unit"; unit = "{unit}";'
                         f' valve = true; }}')
        sim_devices.append(f'  {{ id = "{mid}"; endpoint = "cj"; address = "{address}";'
                           f' driver = "cjt188_cold_water"; category = "unit"; unit = "{unit}";'
                           f' occupied = {"false" if vacant else "true"}; volume_m3 = 56.78; }}')
    meters_text = ",\n".join(gw_meters)
    devices_text = ",\n".join(sim_devices)
    gw_conf = os.path.join(workdir, "gw.conf")
    with open(gw_conf, "w") as f:
        f.write(f"""gateway = {{ id = "gw1"; site = "cn"; data_dir = "{workdir}/gw-default";
  log_level = "info"; language = "en"; }};
mqtt = {{ uri = "tcp://127.0.0.1:1883"; }};
buses = (
  {{ name = "mb"; type = "rtu"; device = "{links['mb']}"; baud = 9600; retries = 0;
    poll_interval_ms = 1000; }},
  {{ name = "dl"; type = "rtu"; protocol = "dlt645"; device = "{links['dl']}"; retries = 0;
    timeout_ms = 300; poll_interval_ms = 1000; }},
  {{ name = "cj"; type = "rtu"; protocol = "cjt188"; device = "{links['cj']}"; retries = 0;
    timeout_ms = 300; poll_interval_ms = 1000; }}
);
units = (
{units_text}
);
meters = (
{meters_text}
);
rules = {{
  reverse_energy = {{ severity = "major"; hold_s = 0; clear_s = 20;
                     negative_power_hold_s = 2; export_confirm_polls = 2; }};
  vacant_flow = {{ severity = "major"; hold_s = 0; clear_s = 30; min_increase_m3 = 0.005;
                  confirm_reads = 1; window_s = 60; auto_close_valve = true; valve_check_s = 4; }};
  meter_offline = {{ severity = "minor"; failures = 3; }};
}};
http = {{ listen = ""; }};
""")
    sim_conf = os.path.join(workdir, "sim.conf")
    with open(sim_conf, "w") as f:
        f.write(f"""sim = {{ seed = 7; control = "127.0.0.1:0"; }};
endpoints = (
  {{ name = "mb"; type = "rtu"; link = "{links['mb']}"; baud = 9600; parity = "N";
    unknown_slave = "silent"; }},
  {{ name = "dl"; type = "rtu"; protocol = "dlt645"; link = "{links['dl']}"; baud = 2400;
    parity = "E"; turnaround_ms = 20; }},
  {{ name = "cj"; type = "rtu"; protocol = "cjt188"; link = "{links['cj']}"; baud = 2400;
    parity = "E"; turnaround_ms = 20; }}
);
devices = (
{devices_text}
);
""")
    return gw_conf, sim_conf, links


class CnMetersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-cn-")
        gw_conf, sim_conf, cls.links = write_site(cls.workdir)
        cls.stack = Stack(gw_conf=gw_conf, sim_conf=sim_conf, endpoints=(),
                          gw_sets=("http.listen=",))
        try:
            cls.stack.start(gw=False)
            for link in cls.links.values():
                wait_for(lambda: os.path.exists(link), 10, what=f"pty link {link}")
            cls.stack.gw.start()
        except Exception:
            cls.stack.dump_logs()
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    def good_ids(self, since=0.0):
        return {r["meter"] for r in self.stack.readings(since) if r["quality"] == "good"}

    def test_1_readings_equal_what_the_simulator_serves(self):
        stack = self.stack
        ids = {"E-MB-1"} | {m[0] for m in DL_METERS + CJ_METERS}
        wait_for(lambda: self.good_ids() >= ids, 40, what="a good reading from every meter")
        stack.control.call(cmd="freeze", on=True)
        try:
            time.sleep(3.0)
            frozen_at = time.time()
            expected = {i: stack.control.call(cmd="get", device=i) for i in ids}
            wait_for(lambda: self.good_ids(frozen_at) >= ids, 40, what="fresh readings")
            compared = {}
            for reading in stack.readings(frozen_at):
                if reading["quality"] != "good":
                    continue
                mid = reading["meter"]
                for quantity, want in expected[mid]["values"].items():
                    got = reading["values"].get(quantity)
                    if quantity == "serial" or got is None:
                        continue  # a slow item not read in this poll
                    if mid == "E-MB-1":
                        self.assertTrue(math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9),
                                        f"{mid} {quantity}: gateway {got} simulator {want}")
                    else:
                        # The simulator reports what it puts on the wire.
                        self.assertEqual(got, want, f"{mid} {quantity}")
                    compared.setdefault(mid, set()).add(quantity)
                if mid.startswith("W-CJ"):
                    self.assertEqual(reading["values"].get("valve"), "open", mid)
                    self.assertEqual(reading["values"].get("battery_low"), 0, mid)
            for mid, _, _ in DL_METERS:
                self.assertTrue({"energy_import_kwh", "energy_export_kwh", "power_w"}
                                <= compared.get(mid, set()), (mid, compared.get(mid)))
            for mid, _, _ in CJ_METERS:
                self.assertTrue({"volume_m3", "valve_fault"} <= compared.get(mid, set()),
                                (mid, compared.get(mid)))
        finally:
            stack.control.call(cmd="freeze", on=False)
        # Voltage and current are read every 10th poll, but they are read.
        wait_for(lambda: any("voltage_v" in r["values"] for r in stack.readings()
                             if r["meter"] == "E-DL-1"), 30, what="a slow DL/T 645 item")

    def test_2_reverse_running_raises_reverse_energy(self):
        stack = self.stack
        since = time.time()
        stack.control.call(cmd="event", device="E-DL-1", event="reverse", on=True)
        try:
            wait_for(lambda: [a for a in stack.alerts(since) if a["rule"] == "reverse_energy"
                              and a["state"] == "raised" and "E-DL-1" in json.dumps(a)],
                     40, what="reverse_energy on E-DL-1")
        finally:
            stack.control.call(cmd="event", device="E-DL-1", event="reverse", on=False)

    def test_3_vacant_flow_closes_the_cjt188_valve(self):
        stack = self.stack
        since = time.time()
        stack.control.call(cmd="event", device="W-CJ-1", event="flow", flow_m3h=30.0)
        wait_for(lambda: [a for a in stack.alerts(since) if a["rule"] == "vacant_flow"
                          and a["state"] == "raised" and "2-201" in json.dumps(a)],
                 40, what="vacant_flow on unit 2-201")
        wait_for(lambda: [r for r in stack.readings(since) if r["meter"] == "W-CJ-1"
                          and r["values"].get("valve") == "closed"],
                 30, what="W-CJ-1's valve read back closed")
        # Closed for real: the volume stops growing.
        time.sleep(3.0)

        def latest():
            return [r for r in stack.readings() if r["meter"] == "W-CJ-1"
                    and r["quality"] == "good" and "volume_m3" in r["values"]][-1]["values"]
        first = latest()
        time.sleep(3.0)
        last = latest()
        self.assertEqual(first.get("volume_m3"), last.get("volume_m3"))
        self.assertEqual(last.get("valve"), "closed")

    def test_4_abnormal_valve_after_close_is_critical(self):
        stack = self.stack
        since = time.time()
        stack.control.call(cmd="event", device="W-CJ-2", event="valve", valve_fault=True)
        stack.control.call(cmd="event", device="W-CJ-2", event="flow", flow_m3h=30.0)
        wait_for(lambda: [a for a in stack.alerts(since) if a["rule"] == "vacant_flow"
                          and "2-202" in json.dumps(a) and a.get("severity") == "critical"],
                 60, what="vacant_flow on 2-202 escalated to critical")
        res = stack.ctl("--json", "workorders")
        orders = json.loads(res.stdout)
        rows = orders["rows"] if isinstance(orders, dict) else orders
        self.assertTrue([o for o in rows if o.get("category") == "water"
                         and o.get("unit") == "2-202"], rows)

    def test_5_silent_and_garbled_meters_leave_the_bus_working(self):
        stack = self.stack
        stack.control.call(cmd="fault", device="E-DL-2", fault="silent")
        stack.control.call(cmd="fault", device="E-DL-3", fault="garbage")
        try:
            since = time.time()

            def failing_twice():
                after = stack.readings(since)
                return all(len([r for r in after if r["meter"] == m
                                and r["quality"] == "error"]) >= 2
                           for m in ("E-DL-2", "E-DL-3"))
            wait_for(failing_twice, 40, what="two failed polls of each faulty meter")
            settled = time.time()
            wait_for(lambda: len([r for r in stack.readings(settled) if r["meter"] == "E-DL-1"
                                  and r["quality"] == "good"]) >= 3,
                     30, what="E-DL-1 still read while its neighbours fail")
            after = stack.readings(settled)
            for mid in ("E-DL-2", "E-DL-3"):
                mine = [r["quality"] for r in after if r["meter"] == mid]
                self.assertNotIn("good", mine, mid)
            self.assertTrue([r for r in after if r["meter"] == "E-DL-1"
                             and r["quality"] == "good" and "energy_import_kwh" in r["values"]])
            self.assertTrue([r for r in after if r["meter"] == "W-CJ-3" and r["quality"] == "good"])
        finally:
            stack.control.call(cmd="fault", device="E-DL-2", fault="none")
            stack.control.call(cmd="fault", device="E-DL-3", fault="none")
        again = time.time() + 1.0
        wait_for(lambda: {"E-DL-2", "E-DL-3"} <= self.good_ids(again), 60,
                 what="the meters answer again after the faults end")


if __name__ == "__main__":
    unittest.main()
