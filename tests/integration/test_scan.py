"""estate-ctl scan: estate-sim serves 30 devices of every meter model on one
RS-485 line behind a simulated converter in transparent mode (rtu_over_tcp),
one of them in a non-default word order and two of them answering one slave
id. The scan finds every id, names each model, reports the word order, the
serials, the doubly-used id and how the line differs from the config's
inventory (a meter not in the config, a configured meter that does not
answer, a changed serial); its --csv imports cleanly as meters_csv. Ctrl-C
stops it with what it found so far (exit 130). A scan of a bus the running
gateway polls is refused."""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import Process, Stack, binary, free_port, wait_for, wait_port

MODELS = (("sdm120", "electricity"), ("ddsu666", "electricity"), ("dds238", "electricity"),
          ("xintai-water", "water"), ("sdm630", "electricity"), ("dtsu666", "electricity"))
NDEVICES = 30
TWIN_SLAVE = 12            # a second device answers here too
CDAB_SLAVE = 5             # sdm630 wired with word order CDAB
UNCONFIGURED_SLAVE = 20    # answers, not in the config
MISSING_SLAVE = 35         # configured, nobody answers
SERIAL_CHANGED_SLAVE = 7   # the config has an older serial
SERIAL_MODELS = {"sdm120", "sdm630"}  # the models with a serial point
SCAN_IDS = "1-36"


def device_plan():
    """(slave, model, kind, serial, options) for the simulated devices: slaves
    1..29 and a twin on TWIN_SLAVE."""
    out = []
    for i in range(NDEVICES - 1):
        slave = i + 1
        model, kind = MODELS[i % len(MODELS)]
        opts = ' word_order = "CDAB";' if slave == CDAB_SLAVE else ""
        out.append((slave, model, kind, 40000001 + i, opts))
    out.append((TWIN_SLAVE, "sdm120", "electricity", 49999999, " shares_slave = true;"))
    return out


def write_configs(workdir, port, control_port):
    devices = device_plan()
    assert devices[CDAB_SLAVE - 1][1] == "sdm630"
    sim_devices = ",\n".join(
        f'  {{ id = "D{n:02d}"; endpoint = "line"; slave = {slave}; driver = "{model}";'
        f' category = "building"; serial = {serial}; volume_m3 = 12.5;{opts} }}'
        if kind == "water" else
        f'  {{ id = "D{n:02d}"; endpoint = "line"; slave = {slave}; driver = "{model}";'
        f' category = "building"; serial = {serial};{opts} }}'
        for n, (slave, model, kind, serial, opts) in enumerate(devices))
    sim_conf = os.path.join(workdir, "sim.conf")
    with open(sim_conf, "w") as f:
        f.write(f"""sim = {{ seed = 3; control = "127.0.0.1:{control_port}"; }};
endpoints = (
  {{ name = "line"; type = "rtu_over_tcp"; listen = "127.0.0.1:{port}"; baud = 19200;
    parity = "N"; turnaround_ms = 2; unknown_slave = "silent"; }}
);
devices = (
{sim_devices}
);
""")
    meters = []
    for slave, model, kind, serial, _ in devices[:-1]:
        if slave in (UNCONFIGURED_SLAVE, TWIN_SLAVE):
            continue
        if slave == SERIAL_CHANGED_SLAVE:
            serial = 11111111
        meters.append(f'  {{ id = "M{slave:02d}"; bus = "line"; slave = {slave}; driver = "{model}";'
                      f' kind = "{kind}"; category = "building"; building = "1";'
                      f' serial = "{serial}"; }}')
    meters.append(f'  {{ id = "M{MISSING_SLAVE:02d}"; bus = "line"; slave = {MISSING_SLAVE};'
                  f' driver = "sdm120"; kind = "electricity"; category = "building";'
                  f' building = "1"; }}')
    meters_text = ",\n".join(meters)
    gw_conf = os.path.join(workdir, "gw.conf")
    with open(gw_conf, "w") as f:
        f.write(f"""gateway = {{ id = "gw1"; site = "scan"; data_dir = "{workdir}/gw"; }};
mqtt = {{ uri = "tcp://127.0.0.1:1883"; }};
buses = (
  {{ name = "line"; type = "rtu_over_tcp"; host = "127.0.0.1"; port = {port}; baud = 19200;
    parity = "N"; }}
);
meters = (
{meters_text}
);
http = {{ listen = ""; }};
""")
    return gw_conf, sim_conf


class ScanTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-scan-")
        cls.port, cls.control_port = free_port(), free_port()
        cls.gw_conf, cls.sim_conf = write_configs(cls.workdir, cls.port, cls.control_port)
        cls.sim = Process([binary("estate-sim"), "-c", cls.sim_conf, "--set", "sim.scenario=false"],
                          os.path.join(cls.workdir, "sim.log"))
        cls.sim.start()
        wait_port(cls.port)
        cls.json_rows = None

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def scan(self, *extra, conf=None):
        argv = [binary("estate-ctl"), "-c", conf or self.gw_conf, "scan", "--bus", "line",
                "--ids", SCAN_IDS] + list(extra)
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    def rows(self):
        if ScanTest.json_rows is None:
            res = self.scan("--json")
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            ScanTest.json_rows = json.loads(res.stdout)
        return ScanTest.json_rows

    def test_finds_and_names_every_device(self):
        rows = {r["slave"]: r for r in self.rows()}
        for slave, model, _, serial, _ in device_plan()[:-1]:
            with self.subTest(slave=slave):
                self.assertIn(slave, rows)
                if slave == TWIN_SLAVE:
                    continue
                self.assertEqual(rows[slave].get("model"), model, rows[slave])
                if model in SERIAL_MODELS:
                    self.assertEqual(rows[slave].get("serial"), str(serial), rows[slave])
                else:
                    self.assertNotIn("serial", rows[slave])
                self.assertFalse(rows[slave]["duplicate"], rows[slave])
                if model != "xintai-water":
                    self.assertTrue(180 <= rows[slave]["voltage_v"] <= 260, rows[slave])
                else:
                    self.assertTrue(12.5 <= rows[slave]["volume_m3"] < 13.0, rows[slave])  # flow runs on
        self.assertEqual(rows[CDAB_SLAVE]["word_order"], "CDAB")
        self.assertEqual(rows[1]["word_order"], "model's")
        self.assertNotIn(30, rows)

    def test_reports_duplicate_id_and_inventory_differences(self):
        rows = {r["slave"]: r for r in self.rows()}
        self.assertTrue(rows[TWIN_SLAVE]["duplicate"], rows[TWIN_SLAVE])
        self.assertIn("two devices answer", rows[TWIN_SLAVE]["inventory"])
        self.assertTrue(rows[UNCONFIGURED_SLAVE]["inventory"].startswith("unexpected"))
        self.assertTrue(rows[MISSING_SLAVE]["inventory"].startswith("missing"))
        self.assertEqual(rows[SERIAL_CHANGED_SLAVE]["inventory"],
                         "serial changed (config 11111111)")
        self.assertTrue(rows[CDAB_SLAVE]["inventory"].startswith("word order differs"))
        self.assertEqual(rows[1]["inventory"], "ok")

    def test_csv_imports_as_meters_csv(self):
        res = self.scan("--csv")
        self.assertEqual(res.returncode, 0, res.stderr)
        records = list(csv.DictReader(io.StringIO(res.stdout)))
        by_slave = {int(r["slave"]): r for r in records}
        self.assertEqual(len(records), NDEVICES - 2)  # every id but the doubly-used one
        self.assertNotIn(TWIN_SLAVE, by_slave)
        self.assertEqual(by_slave[CDAB_SLAVE]["word_order"], "CDAB")
        self.assertEqual(by_slave[3]["id"], "M03")
        self.assertEqual(by_slave[UNCONFIGURED_SLAVE]["id"], f"line-{UNCONFIGURED_SLAVE}")
        path = os.path.join(self.workdir, "scanned.csv")
        with open(path, "w") as f:
            f.write(res.stdout)
        with open(self.gw_conf) as f:
            text = f.read()
        start = text.index("meters = (")
        end = text.index(");", start) + 2
        conf = os.path.join(self.workdir, "gw-csv.conf")
        with open(conf, "w") as f:
            f.write(text[:start] + f'meters_csv = "{path}";' + text[end:])
        check = subprocess.run([binary("estate-gw"), "-c", conf, "--check-config"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_ctrl_c_prints_what_was_found(self):
        argv = [binary("estate-ctl"), "-c", self.gw_conf, "scan", "--bus", "line", "--ids",
                "1-247", "--json"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn("interrupted", err)
        found = [r["slave"] for r in json.loads(out) if "model" in r]
        self.assertTrue(found, "what was found before the stop is printed")
        self.assertLess(len(found), NDEVICES - 2, "the scan stopped early")
        # ids are probed in order: every id up to the last one found was scanned
        self.assertEqual(found, [i for i in range(1, max(found) + 1) if i != TWIN_SLAVE])

    def test_refuses_a_bus_the_gateway_polls(self):
        stack = Stack(gw_conf=self.gw_conf, sim_conf=self.sim_conf, endpoints=(),
                      gw_sets=("http.listen=",))
        try:
            stack.start(sim=False)
            wait_for(lambda: any(r["meter"] == "M01" for r in stack.readings()), 30,
                     what="the gateway polling the bus")
            res = subprocess.run([binary("estate-ctl"), "-c", self.gw_conf, "--set",
                                  f"gateway.data_dir={stack.data_dir}", "scan", "--bus", "line",
                                  "--ids", "1"], capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertIn("polled by the running gateway", res.stderr)
        finally:
            stack.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
