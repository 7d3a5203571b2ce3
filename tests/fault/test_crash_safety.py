"""Issue 5, crash safety: the gateway is killed with SIGKILL 20 times during
heavy writes (5 polls/s per meter, incidents open, commands arriving) and
restarted each time. Afterwards the database passes PRAGMA integrity_check,
the patrol log's hash chain verifies, no incident is open twice or raised
twice for one continuous condition, every incident has at most one work
order, and every committed patrol entry reached the broker."""
import json
import random
import signal
import time
import unittest

from faultlib import (FaultCase, integrity_check, log_lines, outbox_count, query, scalar,
                      wait_for)

KILLS = 20
FAST = [f"buses.{bus}.poll_interval_ms=200" for bus in ("gw_a", "gw_b", "fire")]


class CrashSafetyTest(FaultCase):
    def test_sigkill_20_times_during_heavy_writes(self):
        stack = self.stack(gw_sets=FAST).start()
        ctl = stack.control
        # Conditions that hold through every kill: each must stay ONE incident.
        ctl.call(cmd="event", device="E-1-101", event="reverse", on=True)    # major
        ctl.call(cmd="event", device="W-1-102", event="flow", flow_m3h=0.4)  # vacant unit, major
        ctl.call(cmd="event", device="FP-1", event="zone", zone=3, state="alarm")  # critical
        ctl.call(cmd="fault", device="E-OFFICE", fault="silent")             # meter_offline
        wait_for(lambda: {a.get("rule") for a in stack.alerts()} >=
                 {"reverse_energy", "vacant_flow", "fire_alarm", "meter_offline"}, 30,
                 what="the held conditions' incidents")

        rng = random.Random(5)
        t0 = time.time()
        sent = 0
        for i in range(KILLS):
            # Transient conditions and commands keep incidents, work orders
            # and patrol entries being written when the kill lands (sent
            # once the new process has had time to subscribe).
            time.sleep(rng.uniform(0.3, 0.6))
            ctl.call(cmd="event", device="FP-1", event="zone", zone=5,
                     state="fault" if i % 2 == 0 else "normal")
            stack.sub.publish(f"{stack.prefix}/cmd/patrol-checkin", json.dumps(
                {"request_id": f"kill-{i}", "user": "engineer", "location": "plant room",
                 "text": f"round {i}"}))
            sent += 1
            time.sleep(rng.uniform(0.3, 1.2))
            stack.restart_gw(signal.SIGKILL)
        elapsed = time.time() - t0
        # A last clean run: restores, catches up, drains, stops.
        wait_for(lambda: stack.readings(time.time() - 1), 15, what="readings after the kills")
        time.sleep(3)
        self.assertEqual(stack.gw.stop(signal.SIGTERM), 0)
        print(f"\n{KILLS} kills in {elapsed:.0f} s")

        self.assertEqual(len(log_lines(stack, r"core: running")), KILLS + 1,
                         "every restart came up")
        self.assertEqual(integrity_check(stack), "ok")
        verify = stack.ctl("patrol", "verify", check=False)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)

        dup_open = query(stack, "SELECT rule, subject, zone, count(*) FROM incidents "
                                "WHERE state = 'open' GROUP BY rule, subject_type, subject, zone "
                                "HAVING count(*) > 1")
        self.assertEqual(dup_open, [], "one open incident per rule and subject")
        held = {("reverse_energy", "E-1-101"), ("vacant_flow", "1-102"),
                ("fire_alarm", "FP-1"), ("meter_offline", "E-OFFICE")}
        for rule, subject in held:
            rows = query(stack, "SELECT id, state, zone FROM incidents "
                                "WHERE rule = ? AND subject = ?", (rule, subject))
            self.assertEqual(len(rows), 1, f"{rule} {subject}: raised once, {rows}")
            self.assertEqual(rows[0][1], "open", f"{rule} {subject} still open")

        dup_wo = query(stack, "SELECT incident, count(*) FROM workorders "
                              "WHERE incident IS NOT NULL GROUP BY incident HAVING count(*) > 1")
        self.assertEqual(dup_wo, [], "one work order per incident")
        missing_wo = query(stack, "SELECT i.id, i.rule FROM incidents i "
                                  "WHERE i.severity IN ('major', 'critical') AND NOT EXISTS "
                                  "(SELECT 1 FROM workorders w WHERE w.incident = i.id)")
        self.assertEqual(missing_wo, [], "every major/critical incident has its work order")

        # At-least-once across kill -9: every committed patrol entry was sent.
        self.assertEqual(outbox_count(stack), 0)
        patrol_db = {seq for (seq,) in query(stack, "SELECT seq FROM patrol")}
        patrol_mqtt = {m["seq"] for m in stack.sub.json_on("/patrol")}
        self.assertEqual(patrol_db - patrol_mqtt, set(), "patrol entries never published")
        checkins = scalar(stack, "SELECT count(*) FROM patrol WHERE kind LIKE '%checkin%'")
        readings = scalar(stack, "SELECT count(*) FROM readings")
        print(f"{len(patrol_db)} patrol entries ({checkins} check-ins of {sent} sent), "
              f"{readings} readings stored, "
              f"{scalar(stack, 'SELECT count(*) FROM incidents')} incidents, "
              f"{scalar(stack, 'SELECT count(*) FROM workorders')} work orders")


if __name__ == "__main__":
    unittest.main(verbosity=2)
