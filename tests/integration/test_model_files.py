"""A device model added as a file only - no C, no rebuild - is polled end to
end by the running gateway and served by estate-sim from the same file: both
read it from a site models_dir, and the readings on MQTT equal what the
simulator serves. estate-gw --check-model validates such a file."""
import os
import subprocess
import tempfile
import time
import unittest

from harness import Stack, binary, wait_for

# Mixed types and word orders, a status word for the valve (bits as data),
# a valve action with its read-back, and a serial-number point.
ELECTRICITY_MODEL = """\
# acme-em3.conf - a three-phase meter no C code knows about.
name = "acme-em3";
vendor = "Acme";
model = "EM3";
description = "Acme EM3 three-phase meter (test)";
kind = "electricity";
protocol = "modbus";
limits = { max_read_registers = 32; max_gap_registers = 4; serial = { baud = 9600; parity = "E"; stop_bits = 1; }; };
checks = { export_expected = false; rated_power_w = 30000.0; counter_wrap = 42949672.96; resolution = 0.01; };
points = (
  { quantity = "energy_import_kwh"; function = 3; address = 0x0100; type = "uint32"; word_order = "CDAB"; scale = 0.01; unit = "kWh"; },
  { quantity = "energy_export_kwh"; function = 3; address = 0x0102; type = "uint32"; word_order = "CDAB"; scale = 0.01; unit = "kWh"; },
  { quantity = "voltage_l1_v"; function = 3; address = 0x0110; type = "uint16"; scale = 0.1; unit = "V"; },
  { quantity = "voltage_l2_v"; function = 3; address = 0x0111; type = "uint16"; scale = 0.1; unit = "V"; },
  { quantity = "voltage_l3_v"; function = 3; address = 0x0112; type = "uint16"; scale = 0.1; unit = "V"; },
  { quantity = "current_l1_a"; function = 3; address = 0x0114; type = "float32"; word_order = "BADC"; unit = "A"; },
  { quantity = "power_w"; function = 3; address = 0x0120; type = "int32"; unit = "W"; },
  { quantity = "frequency_hz"; function = 4; address = 0x0010; type = "uint16"; scale = 0.01; unit = "Hz"; }
);
serial_number = { function = 3; address = 0x0200; type = "uint32"; every_n_polls = 5; };
"""

WATER_MODEL = """\
# acme-water.conf - a valve water meter no C code knows about.
name = "acme-water";
vendor = "Acme";
model = "WV1";
description = "Acme WV1 valve water meter (test)";
kind = "water";
protocol = "modbus";
checks = { resolution = 0.001; };
points = (
  { quantity = "volume_m3"; function = 3; address = 0x0000; type = "uint32"; scale = 0.001; unit = "m3"; },
  { quantity = "flow_m3h"; function = 3; address = 0x0002; type = "float32"; word_order = "CDAB"; unit = "m3/h"; },
  { quantity = "valve"; function = 3; address = 0x0010; type = "uint16"; status = "state"; }
);
status_words = (
  { name = "state";
    states = ( { mask = 0x0030; value = 0x0010; state = "open"; },
               { mask = 0x0030; value = 0x0020; state = "closed"; },
               { mask = 0x0030; value = 0x0000; state = "moving"; },
               { mask = 0x0030; value = 0x0030; state = "unknown"; } );
    flags = ( { quantity = "valve_fault"; mask = 0x0100; },
              { quantity = "battery_low"; mask = 0x0200; } ); }
);
actions = {
  valve_open = { address = 0x0011; value = 0x00AA; read_back = "valve"; };
  valve_close = { address = 0x0011; value = 0x0055; read_back = "valve"; };
};
"""

GW_CONF = """\
gateway = { id = "gw1"; site = "test"; data_dir = "/tmp/unused"; models_dir = "models"; };
mqtt = { uri = "tcp://127.0.0.1:1883"; };
buses = ( { name = "bus"; type = "tcp"; host = "127.0.0.1"; port = 15502;
            timeout_ms = 500; retries = 0; poll_interval_ms = 500; } );
units = ( { id = "1-101"; building = "1"; occupancy = "occupied"; } );
meters = (
  { id = "E-ACME"; bus = "bus"; slave = 1; driver = "acme-em3"; kind = "electricity";
    category = "office"; location = "office"; serial = "30000001"; },
  { id = "W-ACME"; bus = "bus"; slave = 2; driver = "acme-water"; kind = "water";
    category = "unit"; unit = "1-101"; valve = true; serial = "30000002"; },
  { id = "E-SDM"; bus = "bus"; slave = 3; driver = "sdm120"; kind = "electricity";
    category = "unit"; unit = "1-101"; serial = "30000003"; }
);
"""

SIM_CONF = """\
sim = { seed = 7; control = "127.0.0.1:15020"; models_dir = "models"; };
endpoints = ( { name = "bus"; type = "tcp"; listen = "127.0.0.1:15502"; } );
devices = (
  { id = "E-ACME"; endpoint = "bus"; slave = 1; driver = "acme-em3"; kind = "electricity";
    category = "office"; serial = 30000001; },
  { id = "W-ACME"; endpoint = "bus"; slave = 2; driver = "acme-water"; kind = "water";
    category = "unit"; unit = "1-101"; occupied = true; valve = true; serial = 30000002; },
  { id = "E-SDM"; endpoint = "bus"; slave = 3; driver = "sdm120"; kind = "electricity";
    category = "unit"; unit = "1-101"; occupied = true; serial = 30000003; }
);
"""


class ModelFilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.site = tempfile.mkdtemp(prefix="estate-models-")
        models = os.path.join(cls.site, "models")
        os.mkdir(models)
        for name, text in (("acme-em3.conf", ELECTRICITY_MODEL), ("acme-water.conf", WATER_MODEL)):
            with open(os.path.join(models, name), "w") as f:
                f.write(text)
        cls.gw_conf = os.path.join(cls.site, "estate-gw.conf")
        cls.sim_conf = os.path.join(cls.site, "estate-sim.conf")
        with open(cls.gw_conf, "w") as f:
            f.write(GW_CONF)
        with open(cls.sim_conf, "w") as f:
            f.write(SIM_CONF)
        cls.stack = Stack(gw_conf=cls.gw_conf, sim_conf=cls.sim_conf, endpoints=("bus",)).start()

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        for root, dirs, files in os.walk(cls.site, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(cls.site)

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    def test_file_only_models_polled_and_served_alike(self):
        ids = {"E-ACME", "W-ACME", "E-SDM"}
        wait_for(lambda: {r["meter"] for r in self.stack.readings()
                          if r["quality"] == "good"} >= ids, 15, what="a good reading from every meter")
        self.stack.control.call(cmd="freeze", on=True)
        try:
            frozen_at = time.time() + 1.5  # let polls already under way pass
            time.sleep(1.5)
            expected = {m: self.stack.control.call(cmd="get", device=m) for m in ids}
            self.assertEqual(expected["E-ACME"]["driver"], "acme-em3")
            self.assertEqual(expected["W-ACME"]["driver"], "acme-water")
            wait_for(lambda: {r["meter"] for r in self.stack.readings(frozen_at)
                              if r["quality"] == "good"} >= ids, 10, what="fresh readings")
            latest = {}
            for reading in self.stack.readings(frozen_at):
                if reading["quality"] == "good":
                    latest[reading["meter"]] = reading
            compared = {m: 0 for m in ids}
            for meter, reading in latest.items():
                sim = expected[meter]
                for quantity, value in sim["values"].items():
                    if quantity == "serial":
                        continue
                    got = reading["values"].get(quantity)
                    if got is None:
                        continue  # a slow point not read on this poll
                    self.assertEqual(got, value, f"{meter} {quantity}")
                    compared[meter] += 1
            # Every fast point of each file-only model came through.
            self.assertEqual(compared["E-ACME"], 8)
            self.assertEqual(compared["W-ACME"], 2)
            self.assertGreaterEqual(compared["E-SDM"], 7)
            # The status word, decoded with the file's bits on both sides.
            water = latest["W-ACME"]["values"]
            self.assertEqual(expected["W-ACME"]["valve"], "open")
            self.assertEqual(water["valve"], "open")
            self.assertEqual(water.get("valve_fault"), 0)
            self.assertEqual(water.get("battery_low"), 0)
        finally:
            self.stack.control.call(cmd="freeze", on=False)

    def test_serial_point_of_a_file_model(self):
        def serial_seen():
            for r in self.stack.readings():
                if r["meter"] == "E-ACME" and "serial" in r["values"]:
                    return r["values"]["serial"]
            return None
        serial = wait_for(serial_seen, 15, what="E-ACME's serial (every 5 polls)")
        self.assertEqual(str(serial), "30000001")

    def test_check_model(self):
        path = os.path.join(self.site, "models", "acme-em3.conf")
        res = subprocess.run([binary("estate-gw"), "--check-model", path],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), "OK")
        broken = os.path.join(self.site, "broken.conf")
        with open(broken, "w") as f:
            f.write(ELECTRICITY_MODEL.replace('type = "int32"', 'type = "int24"'))
        res = subprocess.run([binary("estate-gw"), "--check-model", broken],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2)
        line = ELECTRICITY_MODEL.splitlines().index(
            next(l for l in ELECTRICITY_MODEL.splitlines() if '"int32"' in l)) + 1
        self.assertIn(f"{broken}:{line}: power_w: type 'int24' is not one of", res.stderr)

    def test_broken_site_model_is_a_config_error(self):
        bad_dir = os.path.join(self.site, "bad-models")
        os.mkdir(bad_dir)
        with open(os.path.join(bad_dir, "x.conf"), "w") as f:
            f.write(WATER_MODEL.replace('read_back = "valve"; };\n  valve_close',
                                        '};\n  valve_close'))
        res = subprocess.run([binary("estate-gw"), "-c", self.gw_conf, "--set",
                              f"gateway.models_dir={bad_dir}", "--check-config"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2)
        self.assertRegex(res.stderr, r"x\.conf:\d+: valve_open: an action needs read_back")


if __name__ == "__main__":
    unittest.main(verbosity=2)
