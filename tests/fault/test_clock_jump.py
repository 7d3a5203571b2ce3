"""Clock jumps: the gateway's wall clock is moved while it runs (an
LD_PRELOAD library, clockshift.c, adds the seconds in a file to
CLOCK_REALTIME; the monotonic clock stays real). SLA timers keep measuring
elapsed time: after a +2 h jump a dispatched order's 60 s arrival SLA is
not breached early, after a -1 day jump it is still escalated on time
(within the 60 s and one SLA rescan), and both jumps are in the patrol
log ("clock moved by +2 h", "clock moved by -1 day"). The rules measure
their windows in elapsed time too: the jumps raise no incident (no frozen
counter after +2 h), and a reverse flow started after the -1 day jump is
raised within its 10 s hold and a few polls."""
import json
import os
import time

from faultlib import FaultCase, query, scalar, wait_for

ARRIVE_S = 60
REVERSE_METER = "E-1-102"
REVERSE_WITHIN_S = 30  # negative_power_hold_s (10 s) and a few polls
SCAN_S = 10  # the SLA rescan interval: a breach is escalated within it
CLOCKSHIFT = os.path.join(os.environ.get("ESTATE_BUILD_DIR", ""), "tests", "fault",
                          "libestate_test_clockshift.so")


class ClockJumpTest(FaultCase):
    def set_shift(self, seconds):
        with open(self.shift_file + ".tmp", "w") as f:
            f.write(f"{seconds}\n")
        os.replace(self.shift_file + ".tmp", self.shift_file)

    def shifted(self, run):
        """Runs run() with the shifted clock in the environment: estate-ctl
        too, as on a real machine, where every process sees the same wall
        clock (its requests carry their time)."""
        saved = dict(os.environ)
        os.environ["LD_PRELOAD"] = CLOCKSHIFT
        os.environ["ESTATE_CLOCKSHIFT_FILE"] = self.shift_file
        try:
            return run()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def ctl(self, stack, *args):
        return self.shifted(lambda: stack.ctl(*args))

    def start(self):
        self.assertTrue(os.path.exists(CLOCKSHIFT), f"{CLOCKSHIFT} is built")
        stack = self.stack(gw_sets=[f"workorders.arrive_within_s={ARRIVE_S}"])
        self.shift_file = os.path.join(stack.workdir, "clockshift")
        self.set_shift(0)
        stack.start(gw=False)
        self.shifted(stack.gw.start)
        wait_for(lambda: stack.readings(), 20, what="the gateway running")
        return stack

    def dispatch(self, stack, description, location):
        self.ctl(stack, "workorder", "create", "--category", "water", "--description", description,
                 "--location", location)
        wo = scalar(stack, "SELECT id FROM workorders WHERE description = ?", (description,))
        self.assertIsNotNone(wo, "work order created")
        self.ctl(stack, "workorder", str(wo), "dispatch", "--assignee", "engineer")
        wait_for(lambda: scalar(stack, "SELECT state FROM workorders WHERE id = ?", (wo,))
                 == "dispatched", 10, what="the order dispatched")
        return wo, time.monotonic()

    @staticmethod
    def escalated(stack, wo):
        return scalar(stack, "SELECT escalated FROM workorders WHERE id = ?", (wo,)) == 1

    def patrol_texts(self, stack):
        return [t for (t,) in query(stack, "SELECT text FROM patrol ORDER BY seq")]

    def first_alert(self, stack, rule, subject, since):
        """Receive time of the first raised alert of rule on subject after since, or None."""
        for ts, topic, payload, _ in stack.sub.snapshot():
            if ts < since or not topic.endswith("/alerts") or not payload:
                continue
            a = json.loads(payload)
            if a.get("rule") == rule and a.get("state") == "raised" and \
                    subject in (a.get("meter"), a.get("unit")):
                return ts
        return None

    def escalation_delay(self, stack, wo, dispatched):
        wait_for(lambda: self.escalated(stack, wo), ARRIVE_S + SCAN_S + 15,
                 what=f"order {wo} escalated")
        return time.monotonic() - dispatched

    def test_jump_forward_2h_no_false_breach_then_back_1day_escalates_on_time(self):
        stack = self.start()
        first, first_at = self.dispatch(stack, "clock test: before the jumps", "plant room")

        self.sleep(5)
        self.set_shift(2 * 3600)
        wait_for(lambda: any("clock moved by +2 h" in t for t in self.patrol_texts(stack)), 10,
                 what="the +2 h jump in the patrol log")
        self.sleep(SCAN_S + 5)  # a rescan after the jump
        self.assertFalse(self.escalated(stack, first), "no false breach after +2 h")

        second, second_at = self.dispatch(stack, "clock test: after +2 h", "boiler room")
        self.sleep(3)
        self.set_shift(2 * 3600 - 86400)
        wait_for(lambda: any("clock moved by -1 day" in t for t in self.patrol_texts(stack)), 10,
                 what="the -1 day jump in the patrol log")
        reverse_at = time.time()
        stack.control.call(cmd="event", device=REVERSE_METER, event="reverse", on=True,
                           power_w=800.0)

        delay_first = self.escalation_delay(stack, first, first_at)
        self.assertFalse(self.escalated(stack, second) and
                         time.monotonic() - second_at < ARRIVE_S - 1,
                         "the second order is not escalated early")
        delay_second = self.escalation_delay(stack, second, second_at)
        print(f"\narrival SLA {ARRIVE_S} s: escalated after {delay_first:.1f} s (+2 h, then "
              f"-1 day) and {delay_second:.1f} s (-1 day)")
        for delay in (delay_first, delay_second):
            self.assertGreaterEqual(delay, ARRIVE_S - 1, "not before the SLA")
            self.assertLessEqual(delay, ARRIVE_S + SCAN_S + 3, "on time despite the jump")
        unexpected = [row for row in query(stack, "SELECT rule, subject, zone, text FROM incidents")
                      if row[:2] != ("reverse_energy", REVERSE_METER)]
        self.assertEqual(unexpected, [], "no incident raised by the clock jumps")
        raised_at = self.first_alert(stack, "reverse_energy", REVERSE_METER, reverse_at)
        self.assertIsNotNone(raised_at, f"reverse flow on {REVERSE_METER} after -1 day raised")
        print(f"reverse flow after -1 day raised after {raised_at - reverse_at:.1f} s")
        self.assertLessEqual(raised_at - reverse_at, REVERSE_WITHIN_S,
                             "reverse flow raised within its hold despite the jump")
        log = stack.gw.output()
        self.assertIn("wall clock moved by +2 h", log)
        self.assertIn("wall clock moved by -1 day", log)
