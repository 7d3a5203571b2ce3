"""What the gateway tells about the field when the field misbehaves: an
unreachable fire panel is shown as state "unknown" (never "no alarm"); a
supervisory zone raises fire_supervisory; a NaN from a meter (its frequency) marks its
reading stale with the quantity named instead of the value vanishing from
a "good" reading; and a failed poll forces no extra serial read (on the
demo: 1 s polls, 500 ms timeout, no retries)."""
import time
import unittest

from faultlib import FaultCase, parse_ts, wait_for


def panel_states(stack, since=0.0):
    return stack.sub.json_on("/panels/FP-1/state", since)


class FieldStateTest(FaultCase):
    def test_unreachable_panel_is_unknown(self):
        stack = self.stack().start()
        wait_for(lambda: panel_states(stack), 20, what="the panel's state")
        first = panel_states(stack)[-1]
        self.assertEqual(first["quality"], "good", first)
        self.assertEqual(first["state"], "normal", first)
        self.assertIs(first["panel_alarm"], False)
        self.assertEqual(len(first["zones"]), 8)

        t0 = time.time()
        stack.control.call(cmd="fault", device="FP-1", fault="silent")
        wait_for(lambda: any(s["quality"] == "error" for s in panel_states(stack, t0)), 15,
                 what="the panel's state after it stopped answering")
        lost = [s for s in panel_states(stack, t0) if s["quality"] == "error"][0]
        print(f"\nunreachable panel: {lost}")
        self.assertEqual(lost["state"], "unknown", "an unreachable panel is not 'no alarm'")
        self.assertIsNone(lost.get("panel_alarm"), lost)
        self.assertIsNone(lost.get("panel_fault"), lost)
        self.assertNotIn("zones", lost)

        t1 = time.time()
        stack.control.call(cmd="fault", device="FP-1", fault="none")
        wait_for(lambda: any(s["quality"] == "good" for s in panel_states(stack, t1)), 20,
                 what="the panel back")
        back = [s for s in panel_states(stack, t1) if s["quality"] == "good"][0]
        self.assertEqual(back["state"], "normal", back)
        self.assertIs(back["panel_alarm"], False)

    def test_supervisory_zone_raises_fire_supervisory(self):
        stack = self.stack().start()
        wait_for(lambda: panel_states(stack), 20, what="the panel's state")
        t0 = time.time()
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=6, state="supervisory")

        def raised():
            return [a for a in stack.alerts(t0)
                    if a["rule"] == "fire_supervisory" and a["state"] == "raised"]
        wait_for(raised, 15, what="fire_supervisory raised")
        alert = raised()[0]
        print(f"\nsupervisory: {alert['text']}")
        self.assertEqual(alert["panel"], "FP-1")
        self.assertEqual(alert["zone"], 6)
        self.assertEqual(alert["severity"], "major")
        wait_for(lambda: any(s["state"] == "supervisory" for s in panel_states(stack, t0)), 10,
                 what="the panel state to show it")
        state = [s for s in panel_states(stack, t0) if s["state"] == "supervisory"][-1]
        self.assertTrue(state["zones"][5]["supervisory"])
        self.assertIs(state["panel_alarm"], False, "supervisory is not a fire alarm")
        self.assertFalse([a for a in stack.alerts(t0) if a["rule"] == "fire_alarm"])

        t1 = time.time()
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=6, state="normal")
        wait_for(lambda: any(a["rule"] == "fire_supervisory" and a["state"] == "cleared"
                             for a in stack.alerts(t1)), 15, what="fire_supervisory cleared")

    def test_nan_marks_the_reading_stale(self):
        stack = self.stack().start()
        wait_for(lambda: any(r["meter"] == "E-1-101" and "frequency_hz" in r["values"]
                             for r in stack.readings()), 20, what="E-1-101 readings")
        t0 = time.time()
        stack.control.call(cmd="event", device="E-1-101", event="set", quantity="frequency_hz",
                           value="nan")
        time.sleep(3.5)
        stack.control.call(cmd="event", device="E-1-101", event="set", quantity="frequency_hz",
                           value=None)
        mine = [r for r in stack.readings() if r["meter"] == "E-1-101"
                and t0 + 1.1 <= parse_ts(r["ts"]) < t0 + 3.5]
        print(f"\nNaN frequency: {[(r['quality'], r.get('error')) for r in mine]}")
        self.assertTrue(mine)
        for r in mine:
            self.assertEqual(r["quality"], "stale", r)
            self.assertEqual(r.get("error"), "bad value: frequency_hz", r)
            self.assertNotIn("frequency_hz", r["values"])
            self.assertIn("energy_import_kwh", r["values"], "the other values are kept")
        t1 = time.time()
        wait_for(lambda: any(r["meter"] == "E-1-101" and r["quality"] == "good"
                             and parse_ts(r["ts"]) > t1 + 0.5 for r in stack.readings()), 10,
                 what="good readings again")

    def test_failed_poll_forces_no_extra_serial_read(self):
        # E-1-202 (sdm120) reads its serial (and total energy) in slow
        # requests of their own; here every 100000 polls, so any request
        # beyond a poll's usual ones would be forced by a failure.
        meter = "E-1-202"
        stack = self.stack(gw_sets=(f"meters.{meter}.serial_every=100000",)).start()

        def readings(since, until):
            return [r for r in stack.readings() if r["meter"] == meter
                    and since <= parse_ts(r["ts"]) <= until]

        def requests():
            return stack.control.call(cmd="get", device=meter)["requests"]
        wait_for(lambda: len(readings(0, 1e12)) >= 3, 20, what=f"{meter} readings")
        rb, tb = requests(), time.time()
        time.sleep(4)
        re, te = requests(), time.time()
        time.sleep(1.0)
        per_poll = round((re - rb) / len(readings(tb, te)))
        self.assertGreaterEqual(per_poll, 1)

        r0, t0 = requests(), time.time()
        failures = 6
        for _ in range(failures):
            t = time.time()
            stack.control.call(cmd="fault", device=meter, fault="silent", count=1)
            wait_for(lambda: any(r["quality"] == "error" for r in readings(t, 1e12)), 5,
                     what="a failed poll")
            time.sleep(1.5)
        r1, t1 = requests(), time.time()
        time.sleep(1.0)  # the last poll's reading arrives
        polls = readings(t0, t1)
        errors = [r for r in polls if r["quality"] == "error"]
        print(f"\n{per_poll} requests per poll; then {len(polls)} polls "
              f"({len(errors)} failed), {r1 - r0} requests")
        self.assertEqual(len(errors), failures)
        # A failed poll sends one request (it stops at the first timeout);
        # one poll's worth of slack at either end.
        self.assertLessEqual(r1 - r0, per_poll * (len(polls) - failures + 2) + failures,
                             "a failed poll forced extra (serial) reads")

if __name__ == "__main__":
    unittest.main(verbosity=2)
