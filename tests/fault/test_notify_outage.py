"""Alerts survive a robot outage and a SIGKILL, and a rate-limited robot is
slowed down, not spammed (stand-ins: tests/integration/notify_standins.py).

1. WeCom answers the first call with errcode 45009 (rate limited): the
   gateway rests that robot (a minute in the field, retry_max_s = 5 s
   here) and then delivers; DingTalk is not held up.
2. Both robots go down (the port refuses connections); two more fire
   incidents are raised, their rows retried with backoff; the gateway is
   SIGKILLed in the middle and restarted; the robots come back: every
   alert is delivered, and none twice (each incident's link is in exactly
   one accepted message per robot). Failing for notify.failing_after_s
   (10 s here) makes P/status "degraded", is in the patrol log and raises
   the gateway incident notify_channel_failing on P/alerts; once
   the robots answer, "ok" again.

The outage lasts about 20 s rather than a minute: what carries an alert
across it is its row (due time and attempts) in SQLite, which the kill and
the restart test; with retry_max_s = 3 s a longer outage only adds retries
of the same kind."""
import re
import signal
import socket
import tempfile
import shutil
import time
import warnings

import faultlib
from harness import DEMO_GW, ROOT, wait_for
from notify_standins import Mailbox, Robots, write_gw_config

import os

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")


def links(text):
    return re.findall(r"\?incident=(\d+)", text or "")


class NotifyOutageTest(faultlib.FaultCase):
    def setUp(self):
        super().setUp()
        warnings.simplefilter("ignore", UserWarning)
        self.confdir = tempfile.mkdtemp(prefix="estate-notify-")
        self.addCleanup(shutil.rmtree, self.confdir, True)
        self.robots = Robots().start()
        self.addCleanup(self.robots.stop)
        self.mail = Mailbox().start()
        self.addCleanup(self.mail.stop)

    def wecom_calls(self):
        return [c for c in self.robots.calls if c["robot"] == "wecom"]

    def delivered_ids(self, robot):
        ids = []
        for _, text, _ in self.robots.delivered(robot):
            ids += [int(i) for i in links(text)]
        return ids

    def test_rate_limit_outage_and_kill(self):
        conf = write_gw_config(self.confdir, DEMO_GW, self.robots.port, self.mail.port,
                               retry_max_s=3)
        # Rest after a 45009 is min(60 s, retry_max_s): 5 s for this phase.
        stack = self.stack(gw_conf=conf, gw_sets=[f"http.users_file={DEMO_USERS}",
                                                  "notify.retry_max_s=5",
                                                  "notify.failing_after_s=10"]).start()
        wait_for(lambda: stack.readings(), 30, what="first readings")
        sim = stack.control

        # 1. Rate limited: one 45009, then a pause, then delivery.
        self.robots.rate_limited_answers = 1
        sim.call(cmd="event", device="FP-1", event="zone", zone=1, state="alarm")
        wait_for(lambda: self.robots.delivered("wecom"), 20, what="WeCom delivery after 45009")
        calls = self.wecom_calls()
        self.assertEqual(len(calls), 2, f"one refused call, one accepted: {calls}")
        self.assertEqual(calls[0]["answer"]["errcode"], 45009)
        self.assertGreaterEqual(calls[1]["t"] - calls[0]["t"], 4.5, "rested before trying again")
        dingtalk = self.robots.delivered("dingtalk")
        self.assertEqual(len(dingtalk), 1)
        self.assertLess(dingtalk[0][0] - calls[0]["t"], 2.0, "DingTalk not held up by WeCom")

        # 2. Outage, with a SIGKILL in the middle.
        self.robots.stop()
        outage_start = time.time()
        sim.call(cmd="event", device="FP-1", event="zone", zone=2, state="fault")
        sim.call(cmd="event", device="FP-1", event="zone", zone=3, state="alarm")
        wait_for(lambda: faultlib.scalar(
            stack, "SELECT count(*) FROM notifications WHERE delivered_ms IS NULL"
            " AND attempts >= 2 AND channel IN ('wecom_duty', 'dingtalk_duty')", default=0) >= 3,
            30, what="the new alerts retried during the outage")
        # Failing for notify.failing_after_s (10 s here): health degraded, in the patrol log.
        wait_for(lambda: self.status_health(stack) == "degraded", 25,
                 what="P/status degraded by the failing channels")
        # (P/status may go out before the tick that wrote the entry commits)
        wait_for(lambda: [t for (t,) in faultlib.query(
            stack, "SELECT text FROM patrol WHERE kind = 'notify'") if "wecom_duty" in t], 10,
            what="the failing channel in the patrol log")
        # ... and an incident of its own on P/alerts (the console shows it).
        raised = wait_for(lambda: [a for a in stack.alerts()
                                   if a.get("rule") == "notify_channel_failing"
                                   and a.get("state") == "raised" and "wecom_duty" in a.get("text", "")],
                          10, what="the failing channel's incident on P/alerts")
        self.assertEqual(raised[0]["subject_type"], "gateway", raised[0])
        stack.restart_gw(signal.SIGKILL)
        wait_for(lambda: faultlib.log_lines(stack, r"notify: channel \w+: .*wait") and
                 time.time() - outage_start > 15, 40, what="retries after the restart")
        self.robots.start()
        expected = {r[0] for r in faultlib.query(
            stack, "SELECT DISTINCT incident FROM notifications WHERE channel = 'wecom_duty'")}
        self.assertEqual(len(expected), 3, expected)
        wait_for(lambda: faultlib.scalar(
            stack, "SELECT count(*) FROM notifications WHERE delivered_ms IS NULL"
            " AND channel != 'feishu_office'", default=1) == 0, 30,
            what="every alert delivered once the robots are back")
        time.sleep(2)  # a duplicate would have arrived by now
        self.assertEqual(self.robots.problems, [])
        wecom = self.delivered_ids("wecom")
        self.assertEqual(sorted(wecom), sorted(expected), f"each alert once on WeCom: {wecom}")
        fire_alarms = {r[0] for r in faultlib.query(
            stack, "SELECT id FROM incidents WHERE rule = 'fire_alarm'")}
        dingtalk = self.delivered_ids("dingtalk")
        self.assertEqual(sorted(dingtalk), sorted(fire_alarms), f"each alarm once on DingTalk: {dingtalk}")
        attempts = faultlib.scalar(stack, "SELECT max(attempts) FROM notifications")
        self.assertGreaterEqual(attempts, 3, "retries counted across the restart")
        wait_for(lambda: self.status_health(stack) == "ok", 15, what="P/status ok again")

    @staticmethod
    def status_health(stack):
        statuses = [m for m in stack.sub.json_on("/status") if m.get("state") == "online"]
        return statuses[-1].get("health") if statuses else None


class NotifyRateTest(faultlib.FaultCase):
    """rate_per_min = 1 on the WeCom channel: after one message, the next
    alerts wait for the minute to pass (queued, not sent, not dropped)
    while DingTalk, unlimited here, gets its alarm at once."""

    def test_rate_per_min_holds_the_rest(self):
        warnings.simplefilter("ignore", UserWarning)
        confdir = tempfile.mkdtemp(prefix="estate-notify-")
        self.addCleanup(shutil.rmtree, confdir, True)
        robots = Robots().start()
        self.addCleanup(robots.stop)
        mail = Mailbox().start()
        self.addCleanup(mail.stop)
        conf = write_gw_config(confdir, DEMO_GW, robots.port, mail.port)
        stack = self.stack(gw_conf=conf, gw_sets=[f"http.users_file={DEMO_USERS}",
                                                  "notify.channels.wecom_duty.rate_per_min=1",
                                                  "notify.channels.dingtalk_duty.rate_per_min=0"]).start()
        wait_for(lambda: stack.readings(), 30, what="first readings")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=1, state="alarm")
        wait_for(lambda: robots.delivered("wecom"), 15, what="the first WeCom message")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=2, state="fault")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=3, state="alarm")
        wait_for(lambda: len(robots.delivered("dingtalk")) == 2, 15, what="both alarms on DingTalk")
        time.sleep(3)
        self.assertEqual(len([c for c in robots.calls if c["robot"] == "wecom"]), 1,
                         "one WeCom call in the minute")
        waiting = faultlib.query(stack, "SELECT attempts FROM notifications"
                                 " WHERE channel = 'wecom_duty' AND delivered_ms IS NULL")
        self.assertEqual(waiting, [(0,), (0,)], "the next two wait, untried")
        self.assertEqual(robots.problems, [])


class NotifyShutdownTest(faultlib.FaultCase):
    """SIGTERM while a robot holds a call open (it accepts the connection and
    never answers; the channel's timeout is 30 s): the gateway gives the
    call up and exits within a few seconds; the alert stays queued."""

    def test_sigterm_with_a_call_hanging(self):
        warnings.simplefilter("ignore", UserWarning)
        confdir = tempfile.mkdtemp(prefix="estate-notify-")
        self.addCleanup(shutil.rmtree, confdir, True)
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the kernel and are never answered
        self.addCleanup(silent.close)
        mail = Mailbox().start()
        self.addCleanup(mail.stop)
        conf = write_gw_config(confdir, DEMO_GW, silent.getsockname()[1], mail.port,
                               timeout_ms=30000)
        stack = self.stack(gw_conf=conf, gw_sets=[f"http.users_file={DEMO_USERS}"]).start()
        wait_for(lambda: stack.readings(), 30, what="first readings")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=1, state="alarm")
        wait_for(lambda: faultlib.scalar(stack, "SELECT count(*) FROM notifications", default=0) > 0,
                 15, what="the alarm queued")
        time.sleep(2)  # the call to the silent robot is in flight
        started = time.time()
        code = stack.gw.stop(signal.SIGTERM, timeout=20)
        took = time.time() - started
        self.assertEqual(code, 0)
        self.assertLess(took, 5.0, f"shutdown took {took:.1f} s with a call hanging")
        waiting = faultlib.scalar(stack, "SELECT count(*) FROM notifications"
                                  " WHERE delivered_ms IS NULL AND channel = 'wecom_duty'")
        self.assertEqual(waiting, 1, "the alert stays queued for the next start")


if __name__ == "__main__":
    import unittest
    unittest.main()
