"""DL/T 645 and CJ/T 188 meters: estate-sim serves a Modbus RTU bus, a DL/T
645-2007 bus and a CJ/T 188 bus on pseudo-terminals (2400 8E1 for the two
national protocols) and estate-gw polls all three. Every reading carries what
the simulator serves on the wire (its value rounded to the data item's BCD
decimals); reverse running on a DL/T 645 meter raises reverse_energy; flow in
a vacant unit on a CJ/T 188 meter raises vacant_flow and closes its valve,
read back as closed. The faults are tests/fault/test_cn_faults.py."""
import json
import math
import shutil
import tempfile
import time
import unittest

from cn_site import CJ_METERS, DL_METERS, start_cn_stack
from harness import wait_for


class CnMetersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-cn-")
        cls.stack = start_cn_stack(cls.workdir)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    def good_ids(self, since=0.0):
        return {r["meter"] for r in self.stack.readings(since) if r["quality"] == "good"}

    def test_readings_equal_what_the_simulator_serves(self):
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
                    # open, unless the vacant-flow test has closed it already
                    self.assertEqual(reading["values"].get("valve"),
                                     expected[mid]["values"].get("valve", "open"), mid)
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
                             if r["meter"] == "E-DL-1"), 90, what="a slow DL/T 645 item")

    def test_reverse_running_raises_reverse_energy(self):
        stack = self.stack
        since = time.time()
        stack.control.call(cmd="event", device="E-DL-1", event="reverse", on=True)
        try:
            wait_for(lambda: [a for a in stack.alerts(since) if a["rule"] == "reverse_energy"
                              and a["state"] == "raised" and "E-DL-1" in json.dumps(a)],
                     40, what="reverse_energy on E-DL-1")
        finally:
            stack.control.call(cmd="event", device="E-DL-1", event="reverse", on=False)

    def test_vacant_flow_closes_the_cjt188_valve(self):
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

if __name__ == "__main__":
    unittest.main()
