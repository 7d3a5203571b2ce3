"""A vacant unit's valve that acknowledges the close but does not move
(estate-sim valve_fault: the write is accepted, the motor does not turn):
with auto_close_valve the gateway closes it again valve_retries (3) times,
each check waiting twice as long (valve_check_s 1 here: 1, 2, 4, 8 s), then
raises the incident to critical with a text that says the valve failed,
and its work order becomes critical too."""
import time
import unittest

from faultlib import FaultCase, log_lines, query, wait_for

SETS = ("rules.vacant_flow.auto_close_valve=true", "rules.vacant_flow.valve_check_s=1",
        "rules.vacant_flow.window_s=10")
CLOSE_LINE = r"valve close on meter W-1-102 requested by rule:vacant_flow"
# The texts in either console language (the demo speaks Chinese).
FAILED_WORDS = ("failed to close", "阀门关闭失败")
PLEASE_CLOSE = ("close the valve and check", "请关阀并核查")


def says(text, words):
    return any(w in text for w in words)


class ValveRetryTest(FaultCase):
    def test_unconfirmed_close_is_retried_then_escalated(self):
        stack = self.stack(gw_sets=SETS).start()
        wait_for(lambda: any(r["meter"] == "W-1-102" for r in stack.readings()), 20,
                 what="W-1-102 readings")
        t0 = time.time()
        stack.control.call(cmd="event", device="W-1-102", event="valve", valve_fault=True)
        stack.control.call(cmd="event", device="W-1-102", event="flow", flow_m3h=0.9)

        def vacant(state):
            return [a for a in stack.alerts(t0) if a["rule"] == "vacant_flow"
                    and a.get("unit") == "1-102" and a["state"] == state]
        wait_for(lambda: vacant("raised"), 30, what="vacant_flow raised")
        raised = vacant("raised")[0]
        self.assertEqual(raised["severity"], "major")

        def critical():
            return [a for a in vacant("updated") if a["severity"] == "critical"]
        wait_for(critical, 40, what="vacant_flow escalated to critical")
        closes = log_lines(stack, CLOSE_LINE)
        escalated = critical()[0]
        print(f"\n{len(closes)} closes; {escalated['text']}")
        self.assertEqual(len(closes), 4, "the close and 3 more, then no more")
        self.assertTrue(says(escalated["text"], FAILED_WORDS), escalated["text"])
        self.assertFalse(says(escalated["text"], PLEASE_CLOSE), escalated["text"])
        self.assertEqual(escalated["detail"].get("valve_failed"), 1)
        self.assertEqual(escalated["detail"].get("valve_closes"), 4)

        def order():
            rows = query(stack, "SELECT severity, description FROM workorders WHERE incident = ?",
                         (raised["id"],))
            return rows[0] if rows else None
        wait_for(lambda: order() and order()[0] == "critical", 10,
                 what="the work order to become critical")
        self.assertTrue(says(order()[1], FAILED_WORDS), order()[1])
        time.sleep(3)
        self.assertEqual(len(log_lines(stack, CLOSE_LINE)), 4, "no closes after escalating")


if __name__ == "__main__":
    unittest.main(verbosity=2)
