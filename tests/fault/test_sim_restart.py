"""Issue 5, recovery: the simulator (every Modbus TCP converter and building
3's two pseudo-terminal lines at once) is killed and restarted on the same
ports and links. The gateway reconnects by itself
with backoff; readings resume within a few seconds of the simulator's
return; meter_offline incidents are raised during the outage and cleared
after it, once each."""
import signal
import time
import unittest

from faultlib import FaultCase, log_lines, parse_ts, query, wait_for, wait_port

OUTAGE_S = 12
BUSES = 5  # the demo's gw_a, gw_b, fire (TCP) and b3_elec, b3_water (ptys)


class SimRestartTest(FaultCase):
    def test_gateway_recovers_after_simulator_restart(self):
        stack = self.stack().start()
        meters = {d["id"] for d in stack.control.call(cmd="list")["devices"]
                  if d.get("driver") != "notifier-gw"}
        wait_for(lambda: meters <= {r["meter"] for r in stack.readings()
                                    if r["quality"] == "good"}, 15, what="good readings")
        t_kill = time.time()
        stack.sim.stop(signal.SIGKILL)
        wait_for(lambda: {a.get("meter") for a in stack.alerts(t_kill)
                          if a.get("rule") == "meter_offline" and a["state"] == "raised"} >= meters,
                 OUTAGE_S, what="meter_offline for every meter")
        time.sleep(max(0.0, t_kill + OUTAGE_S - time.time()))
        # Timed from just before the start: the gateway may reconnect before
        # this test sees the control port open.
        t_back = time.time()
        stack.sim.start()
        wait_port(stack.control_port)

        first_good = {}

        def all_back():
            for r in stack.readings(t_back):
                if r["quality"] == "good" and r["meter"] not in first_good:
                    first_good[r["meter"]] = parse_ts(r["ts"])
            return set(first_good) >= meters
        wait_for(all_back, 15, what="good readings from every meter")
        worst = max(first_good.values()) - t_back
        print(f"\nsimulator down {t_back - t_kill:.1f} s; every meter answered again within "
              f"{worst:.1f} s of its return")
        self.assertLess(worst, 8.0)  # link backoff cap 5 s + one poll interval

        devices = meters | {"FP-1"}
        wait_for(lambda: {a.get("meter") or a.get("panel") for a in stack.alerts(t_back)
                          if a.get("rule") == "meter_offline" and a["state"] == "cleared"}
                 >= devices, 10, what="meter_offline cleared for every meter and the panel")
        # One incident per meter for the one outage, all cleared.
        rows = query(stack, "SELECT subject, count(*), sum(state = 'open') FROM incidents "
                            "WHERE rule = 'meter_offline' GROUP BY subject")
        self.assertEqual({r[0] for r in rows}, devices)
        for subject, n, still_open in rows:
            self.assertEqual((n, still_open), (1, 0), subject)
        # The link's failure is logged at growing intervals, not once a poll.
        failed = log_lines(stack, r"poll failed|cannot reach|cannot use")
        self.assertLessEqual(len(failed), BUSES * 8, f"{len(failed)} failure lines")
        self.assertEqual(len(log_lines(stack, r"bus \S+: answers again")), BUSES)


if __name__ == "__main__":
    unittest.main(verbosity=2)
