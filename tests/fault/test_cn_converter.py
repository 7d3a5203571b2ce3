"""DL/T 645 and CJ/T 188 lines behind serial converters in transparent mode:
estate-sim serves the two national lines of tests/integration/cn_site.py on
rtu_over_tcp endpoints (TCP ports, wire timing of their 2400 8E1 side) and
estate-gw polls them over rtu_over_tcp buses. Every reading carries what the
simulator serves, the converters see no broken frame, and when the
converters go away (the simulator is killed) and come back on the same
ports, every meter behind them answers again within a few seconds. The
inventory lists the meters by address, and a scan of a line the gateway
polls is refused."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from cn_site import CJ_METERS, DL_METERS, start_cn_stack, wait_for_lines  # noqa: E402
from faultlib import parse_ts  # noqa: E402
from harness import wait_for, wait_port  # noqa: E402

NATIONAL = {m[0] for m in DL_METERS + CJ_METERS}
OUTAGE_S = 4.0


class CnConverterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-cn-conv-")
        cls.stack = start_cn_stack(cls.workdir, converters=True)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    def good_ids(self, since=0.0):
        return {r["meter"] for r in self.stack.readings(since) if r["quality"] == "good"}

    def endpoint(self, name):
        for ep in self.stack.control.call(cmd="stats")["endpoints"]:
            if ep["name"] == name:
                return ep
        raise AssertionError(f"no endpoint {name}")

    def test_1_readings_equal_what_the_converters_serve(self):
        stack = self.stack
        wait_for(lambda: self.good_ids() >= NATIONAL, 40, what="a good reading from every meter")
        stack.control.call(cmd="freeze", on=True)
        try:
            time.sleep(3.0)
            frozen_at = time.time()
            expected = {i: stack.control.call(cmd="get", device=i) for i in NATIONAL}
            wait_for(lambda: self.good_ids(frozen_at) >= NATIONAL, 40, what="fresh readings")
            compared = {}
            for reading in stack.readings(frozen_at):
                mid = reading["meter"]
                if mid not in NATIONAL or reading["quality"] != "good":
                    continue
                for quantity, want in expected[mid]["values"].items():
                    got = reading["values"].get(quantity)
                    if quantity == "serial" or got is None:
                        continue  # a slow item not read in this poll
                    self.assertEqual(got, want, f"{mid} {quantity}")
                    compared.setdefault(mid, set()).add(quantity)
            for mid, _, _ in DL_METERS:
                self.assertTrue({"energy_import_kwh", "energy_export_kwh", "power_w"}
                                <= compared.get(mid, set()), (mid, compared.get(mid)))
            for mid, _, _ in CJ_METERS:
                self.assertTrue({"volume_m3", "valve_fault"} <= compared.get(mid, set()),
                                (mid, compared.get(mid)))
        finally:
            stack.control.call(cmd="freeze", on=False)
        # The inventory knows these meters by their addresses, not slave ids.
        inventory = {m["id"]: m for m in json.loads(stack.ctl("--json", "inventory").stdout)}
        for mid, address, _ in DL_METERS + CJ_METERS:
            self.assertEqual(inventory[mid].get("address"), address, inventory[mid])
            self.assertNotIn("slave", inventory[mid])
        # The gateway polls these lines: a scan of one is refused.
        res = stack.ctl("scan", "--bus", "dl", "--read-address", check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("polled by the running gateway", res.stderr)
        for name in ("dl", "cj"):
            ep = self.endpoint(name)
            self.assertEqual(ep["type"], "rtu_over_tcp")
            self.assertGreater(ep["requests"], 10, ep)
            self.assertEqual(ep["bad_frames"], 0, ep)
            self.assertEqual(ep["replies"], ep["requests"], ep)

    def test_2_a_converter_restart_is_survived(self):
        stack = self.stack
        wait_for(lambda: self.good_ids() >= NATIONAL, 40, what="a good reading from every meter")
        t_kill = time.time()
        stack.sim.stop(signal.SIGKILL)
        wait_for(lambda: {r["meter"] for r in stack.readings(t_kill + 0.5)
                          if r["quality"] == "error"} >= NATIONAL,
                 15, what="error readings while the converters are down")
        time.sleep(max(0.0, t_kill + OUTAGE_S - time.time()))
        t_back = time.time()
        stack.sim.start()
        wait_port(stack.control_port)
        wait_for_lines(stack.cn_links, stack.cn_ports)
        first_good = {}

        def all_back():
            for r in stack.readings(t_back):
                if r["meter"] in NATIONAL and r["quality"] == "good":
                    first_good.setdefault(r["meter"], parse_ts(r["ts"]))
            return set(first_good) >= NATIONAL
        wait_for(all_back, 20, what="good readings from every meter behind the converters")
        worst = max(first_good.values()) - t_back
        print(f"\nconverters down {t_back - t_kill:.1f} s; every meter answered again within "
              f"{worst:.1f} s of their return")
        self.assertLess(worst, 8.0)  # link backoff cap 5 s + a poll interval
        self.assertTrue(stack.gw.alive())


if __name__ == "__main__":
    unittest.main(verbosity=2)
