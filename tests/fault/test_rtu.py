"""Issue 5, RTU: estate-sim serves meters of every driver on one RS-485 line
(a pseudo-terminal with wire-accurate timing) and estate-gw polls them over
an rtu bus; the readings carry exactly the simulator's values, at 9600 8N1
and 8E1. One owner thread per port: the simulator never sees a broken, CRC-
failing or overlapping frame (bad_frames == 0, every request answered), and
two buses on one serial device are refused by the config check."""
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from rtu_site import endpoint_stats, rtu_stack, start_rtu_stack, wait_for
from harness import binary


class RtuMixin:
    NMETERS = 12
    PARITY = "N"

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-rtu-")
        cls.stack = rtu_stack(cls.workdir, cls.NMETERS, parity=cls.PARITY,
                              poll_interval_ms=1000)
        try:
            start_rtu_stack(cls.stack)
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

    def test_values_match_simulator_and_frames_never_interleave(self):
        stack = self.stack
        ids = {m[0] for m in stack.rtu_meters}
        # 12 meters at ~70 ms a transaction, two or three requests each.
        wait_for(lambda: {r["meter"] for r in stack.readings() if r["quality"] == "good"} >= ids,
                 30, what="a good reading from every RTU meter")
        stack.control.call(cmd="freeze", on=True)
        try:
            time.sleep(3.0)  # polls already under way finish with pre-freeze values
            frozen_at = time.time()
            expected = {i: stack.control.call(cmd="get", device=i) for i in ids}
            wait_for(lambda: {r["meter"] for r in stack.readings(frozen_at)
                              if r["quality"] == "good"} >= ids,
                     30, what="fresh readings after the freeze")
            compared, drivers = 0, set()
            for reading in stack.readings(frozen_at):
                if reading["quality"] != "good":
                    continue
                sim = expected[reading["meter"]]
                drivers.add(sim["driver"])
                for quantity, value in sim["values"].items():
                    got = reading["values"].get(quantity)
                    if quantity == "serial" or got is None:
                        continue
                    if isinstance(value, str) or isinstance(got, str):
                        self.assertEqual(got, value, f"{reading['meter']} {quantity}")
                    else:
                        self.assertTrue(math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9),
                                        f"{reading['meter']} {quantity}: gateway {got} "
                                        f"simulator {value}")
                    compared += 1
            self.assertEqual(drivers, {"sdm120", "ddsu666", "dds238", "xintai-water", "sdm630",
                                       "dtsu666"})
            self.assertGreater(compared, 4 * len(ids))
        finally:
            stack.control.call(cmd="freeze", on=False)
        stats = endpoint_stats(stack)
        self.assertGreater(stats["requests"], 2 * len(ids))
        self.assertEqual(stats["bad_frames"], 0, stats)
        self.assertEqual(stats["dropped"], 0, stats)
        self.assertEqual(stats["exceptions"], 0, stats)
        self.assertEqual(stats["replies"], stats["requests"], stats)
        self.assertTrue(stack.gw.alive())
        log = stack.gw.output()
        self.assertNotIn("timed out", log.lower())


class Rtu8N1Test(RtuMixin, unittest.TestCase):
    NMETERS = 12
    PARITY = "N"

    def test_two_buses_on_one_port_refused(self):
        conf = os.path.join(self.workdir, "gw.conf")
        with open(conf) as f:
            text = f.read()
        twice = text.replace("buses = (\n", "buses = (\n  { name = \"again\"; type = \"rtu\"; "
                                            f"device = \"{self.stack.rtu_link}\"; }},\n", 1)
        path = os.path.join(self.workdir, "gw-twice.conf")
        with open(path, "w") as f:
            f.write(twice)
        res = subprocess.run([binary("estate-gw"), "-c", path, "--check-config"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("already the port of bus", res.stderr)


class Rtu8E1Test(RtuMixin, unittest.TestCase):
    NMETERS = 6
    PARITY = "E"


if __name__ == "__main__":
    unittest.main(verbosity=2)
