"""Faults on DL/T 645 and CJ/T 188 buses (the site of
tests/integration/cn_site.py): a silent and a garbled DL/T 645 meter do not
stop the rest of their bus, and both answer again when the fault ends; a
CJ/T 188 valve that reports abnormal after vacant_flow closed it escalates the
incident to critical, with the work order of the incident."""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from cn_site import start_cn_stack  # noqa: E402
from harness import wait_for  # noqa: E402


class CnFaultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-cn-faults-")
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

    def test_abnormal_valve_after_close_is_critical(self):
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

    def test_silent_and_garbled_meters_leave_the_bus_working(self):
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
