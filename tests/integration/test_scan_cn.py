"""estate-ctl scan on DL/T 645 and CJ/T 188 lines: estate-sim serves a shared
DL/T 645 line of three meters (one of them a 1997 meter) behind a simulated
converter in transparent mode, a DL/T 645 line with one meter on a
pseudo-terminal and a CJ/T 188 line with one water meter behind a converter.
The read-address broadcast finds the one meter of a line (its address as
printed, the CJ/T 188 type byte) and its --csv imports as meters_csv; on the
shared line the replies collide and the scan says so; confirming the
config's addresses on the shared line reports each as present (with the
model that answers), missing or of another model, and given addresses not in
the config as unexpected or not found. Ctrl-C prints what was asked (exit
130)."""
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

from harness import Process, binary, free_port, wait_for, wait_port

SHARED = (("E1", "000000000101", "dlt645_2007_1p"), ("E2", "000000000102", "dlt645_1997_1p"),
          ("E3", "000000000103", "dlt645_2007_1p"))
SINGLE_DL = "000012345678"
SINGLE_CJ = "10000000000201"


def write_configs(workdir, dl_port, cj_port, control_port):
    tty = os.path.join(workdir, "tty", "dl1")
    shared = ",\n".join(
        f'  {{ id = "{i}"; endpoint = "dl"; address = "{a}"; driver = "{d}"; category = "unit"; }}'
        for i, a, d in SHARED)
    sim_conf = os.path.join(workdir, "sim.conf")
    with open(sim_conf, "w") as f:
        f.write(f"""sim = {{ seed = 5; control = "127.0.0.1:{control_port}"; }};
endpoints = (
  {{ name = "dl"; type = "rtu_over_tcp"; protocol = "dlt645"; listen = "127.0.0.1:{dl_port}";
    baud = 2400; parity = "E"; turnaround_ms = 20; }},
  {{ name = "dl1"; type = "rtu"; protocol = "dlt645"; link = "{tty}"; baud = 2400; parity = "E";
    turnaround_ms = 20; }},
  {{ name = "cj"; type = "rtu_over_tcp"; protocol = "cjt188"; listen = "127.0.0.1:{cj_port}";
    baud = 2400; parity = "E"; turnaround_ms = 20; }}
);
devices = (
{shared},
  {{ id = "E9"; endpoint = "dl1"; address = "{SINGLE_DL}"; driver = "dlt645_2007_1p";
    category = "unit"; }},
  {{ id = "W1"; endpoint = "cj"; address = "{SINGLE_CJ}"; driver = "cjt188_cold_water";
    category = "unit"; volume_m3 = 3.25; }}
);
""")
    gw_conf = os.path.join(workdir, "gw.conf")
    with open(gw_conf, "w") as f:
        f.write(f"""gateway = {{ id = "gw1"; site = "scan"; data_dir = "{workdir}/gw"; }};
mqtt = {{ uri = "tcp://127.0.0.1:1883"; }};
buses = (
  {{ name = "dl"; type = "rtu_over_tcp"; protocol = "dlt645"; host = "127.0.0.1";
    port = {dl_port}; timeout_ms = 400; }},
  {{ name = "cj"; type = "rtu_over_tcp"; protocol = "cjt188"; host = "127.0.0.1";
    port = {cj_port}; }}
);
units = ( {{ id = "2-101"; building = "2"; }} );
meters = (
  {{ id = "E-101"; bus = "dl"; address = "000000000101"; driver = "dlt645_2007_1p";
    category = "unit"; unit = "2-101"; }},
  {{ id = "E-102"; bus = "dl"; address = "000000000102"; driver = "dlt645_2007_1p";
    category = "unit"; }},
  {{ id = "E-104"; bus = "dl"; address = "000000000104"; driver = "dlt645_2007_1p";
    category = "unit"; }}
);
http = {{ listen = ""; }};
""")
    return gw_conf, sim_conf, tty


class ScanCnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-scan-cn-")
        cls.dl_port, cls.cj_port, control = free_port(), free_port(), free_port()
        cls.gw_conf, sim_conf, cls.tty = write_configs(cls.workdir, cls.dl_port, cls.cj_port,
                                                       control)
        cls.sim = Process([binary("estate-sim"), "-c", sim_conf, "--set", "sim.scenario=false"],
                          os.path.join(cls.workdir, "sim.log"))
        cls.sim.start()
        wait_port(cls.dl_port)
        wait_port(cls.cj_port)
        wait_for(lambda: os.path.exists(cls.tty), 10, what="the pty link")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def scan(self, *args, conf=None, fmt=("--json",)):
        argv = [binary("estate-ctl"), "-c", conf or self.gw_conf] + list(fmt) + ["scan"] + list(args)
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        return res

    def test_read_address_of_the_one_meter_on_a_pty(self):
        res = self.scan("--device", self.tty, "--protocol", "dlt645", "--read-address")
        rows = json.loads(res.stdout)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["address"], SINGLE_DL)
        self.assertEqual(rows[0]["answer"], "present")
        self.assertEqual(rows[0]["model"], "dlt645_2007_1p")
        self.assertEqual(rows[0]["inventory"], "unexpected (not in the config)")

    def test_read_address_behind_a_converter_and_csv_imports(self):
        res = self.scan("--bus", "cj", "--read-address")
        rows = json.loads(res.stdout)
        self.assertEqual([(r["address"], r.get("type"), r.get("model")) for r in rows],
                         [(SINGLE_CJ, "10", "cjt188_cold_water")])
        res = self.scan("--bus", "cj", "--read-address", fmt=("--csv",))
        table = list(csv.DictReader(io.StringIO(res.stdout)))
        self.assertEqual(len(table), 1, res.stdout)
        self.assertEqual(table[0]["address"], SINGLE_CJ)
        self.assertEqual(table[0]["id"], f"cj-{SINGLE_CJ}")
        self.assertEqual(table[0]["driver"], "cjt188_cold_water")
        csv_path = os.path.join(self.workdir, "found.csv")
        with open(csv_path, "w") as f:
            f.write(res.stdout)
        conf = os.path.join(self.workdir, "gw-csv.conf")
        with open(self.gw_conf) as src, open(conf, "w") as dst:
            text = src.read()
            dst.write(text[:text.index("meters = (")] + f'meters_csv = "{csv_path}";\n'
                      'http = { listen = ""; };\n')
        check = subprocess.run([binary("estate-gw"), "-c", conf, "--check-config"],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_read_address_on_a_shared_line_collides(self):
        res = self.scan("--bus", "dl", "--read-address", fmt=())
        self.assertIn("garbled replies to the read-address broadcast", res.stdout)
        self.assertIn("more than one meter", res.stdout)
        self.assertNotIn("present", res.stdout)

    def test_confirm_the_configured_addresses(self):
        rows = {r["address"]: r for r in json.loads(self.scan("--bus", "dl").stdout)}
        self.assertEqual(set(rows), {"000000000101", "000000000102", "000000000104"})
        ok = rows["000000000101"]
        self.assertEqual((ok["answer"], ok.get("model"), ok["config_id"], ok["inventory"]),
                         ("present", "dlt645_2007_1p", "E-101", "ok"))
        # A 1997 meter configured as a 2007 one: there, but another model.
        other = rows["000000000102"]
        self.assertTrue(other["answer"].startswith("present"), other)
        self.assertEqual(other.get("model"), "dlt645_1997_1p")
        self.assertEqual(other["inventory"], "model differs (config dlt645_2007_1p)")
        missing = rows["000000000104"]
        self.assertEqual((missing["answer"], missing["inventory"]),
                         ("absent", "missing (configured, no answer)"))
        # The same line by its converter, with addresses given.
        rows = json.loads(self.scan("--host", "127.0.0.1", "--port", str(self.dl_port),
                                    "--protocol", "dlt645", "--addresses",
                                    "000000000103,000000000105").stdout)
        self.assertEqual([(r["address"], r["answer"], r["inventory"]) for r in rows],
                         [("000000000103", "present", "unexpected (not in the config)"),
                          ("000000000105", "absent", "not found")])
        csv_out = self.scan("--bus", "dl", fmt=("--csv",)).stdout
        ids = [r["id"] for r in csv.DictReader(io.StringIO(csv_out))]
        self.assertEqual(ids, ["E-101", "E-102"])

    def test_ctrl_c_prints_what_was_asked(self):
        addresses = ",".join(["000000000101"] + [f"0000000009{i:02d}" for i in range(10)])
        argv = [binary("estate-ctl"), "-c", self.gw_conf, "--json", "scan", "--bus", "dl",
                "--addresses", addresses]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)  # the present address and one or two silent ones
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 130, err)
        rows = json.loads(out)
        self.assertGreaterEqual(len(rows), 1)
        self.assertLess(len(rows), 11)
        self.assertEqual((rows[0]["address"], rows[0]["answer"]), ("000000000101", "present"))
        self.assertIn("interrupted", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
