"""Alerts that reach a person: the demo site's incidents routed to
loopback stand-ins for the WeCom, DingTalk and Feishu group robots and to
an SMTP server (notify_standins.py). The fire alarm must reach WeCom and
DingTalk (signed, the duty phone @-mentioned) within 5 s of the incident;
water flowing in a vacant unit goes by e-mail, in English; Feishu's quiet
hours (set around now) hold back the minor "zone disabled" incident and
never the critical fire alarm; no secret shows in the gateway's log."""
import os
import sqlite3
import tempfile
import shutil
import signal
import time
import unittest
import warnings

from harness import DEMO_GW, ROOT, Stack, wait_for
from notify_standins import SECRETS, Mailbox, Robots, write_gw_config

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")
SETS = ["rules.vacant_flow.window_s=10", f"http.users_file={DEMO_USERS}"]


def db_rows(stack, sql, args=()):
    con = sqlite3.connect(f"file:{os.path.join(stack.data_dir, 'estate.db')}?mode=ro",
                          uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


class NotifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", UserWarning)  # aiosmtpd: AUTH without TLS on loopback
        cls.confdir = tempfile.mkdtemp(prefix="estate-notify-")
        cls.robots = Robots().start()
        cls.mail = Mailbox().start()
        conf = write_gw_config(cls.confdir, DEMO_GW, cls.robots.port, cls.mail.port)
        cls.stack = Stack(gw_conf=conf, gw_sets=SETS)
        try:
            cls.stack.start()
            wait_for(lambda: cls.stack.readings(), 30, what="first readings")
            sim = cls.stack.control
            sim.call(cmd="event", device="FP-1", event="zone", zone=1, state="alarm")
            sim.call(cmd="event", device="FP-1", event="zone", zone=4, state="disabled")
            sim.call(cmd="event", device="W-1-102", event="flow", flow_m3h=0.6)
            wait_for(lambda: cls.robots.delivered("wecom") and cls.robots.delivered("dingtalk"),
                     20, what="the fire alarm on WeCom and DingTalk")
            wait_for(lambda: cls.mail.snapshot(), 40, what="the vacant-flow e-mail")
            wait_for(lambda: db_rows(cls.stack, "SELECT 1 FROM notifications n JOIN incidents i"
                                     " ON i.id = n.incident WHERE i.rule = 'fire_disabled'"
                                     " AND n.channel = 'feishu_office'"),
                     20, what="the zone-disabled notification queued for Feishu")
            time.sleep(2)  # anything wrongly sent at once has had time to arrive
        except BaseException:
            cls.stack.dump_logs()
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        cls.robots.stop()
        cls.mail.stop()
        shutil.rmtree(cls.confdir, ignore_errors=True)

    def incident(self, rule):
        rows = db_rows(self.stack, "SELECT id, raised_ms FROM incidents WHERE rule = ?", (rule,))
        self.assertEqual(len(rows), 1, f"one {rule} incident: {rows}")
        return rows[0]

    def test_stand_ins_saw_no_bad_call(self):
        self.assertEqual(self.robots.problems, [])

    def test_fire_alarm_reaches_wecom_and_dingtalk_within_5_s(self):
        _, raised_ms = self.incident("fire_alarm")
        for robot, phone in (("wecom", "13800000001"), ("dingtalk", "13800000002")):
            got = [(t, text, body) for t, text, body in self.robots.delivered(robot)
                   if "火警" in text]
            self.assertEqual(len(got), 1, f"{robot}: one fire alarm message: {got}")
            t, text, body = got[0]
            self.assertLess(t - raised_ms / 1000, 5.0, f"{robot} got it {t - raised_ms / 1000:.1f} s late")
            self.assertIn("【紧急】", text)
            self.assertIn("FP-1", text)
            self.assertIn("开始：", text)
            self.assertIn("http://127.0.0.1:8080/?incident=", text)
            if robot == "wecom":
                self.assertEqual(body["text"]["mentioned_mobile_list"], [phone])
            else:
                self.assertEqual(body["at"]["atMobiles"], [phone])
                self.assertIn("@" + phone, text)

    def test_vacant_flow_goes_by_email_in_english(self):
        incident_id, _ = self.incident("vacant_flow")
        mails = self.mail.snapshot()
        self.assertEqual(len(mails), 1, mails)
        _, mail_from, rcpt, msg = mails[0]
        self.assertEqual(mail_from, "estate-gw@example.com")
        self.assertEqual(rcpt, ["duty@example.com"])
        self.assertIn("Water flowing in a vacant unit", msg["Subject"])
        body = msg.get_content()
        self.assertIn("unit 1-102", body)
        self.assertIn("building 1", body)
        self.assertIn(f"/?incident={incident_id}", body)
        # Not a fire incident: no robot got it.
        for robot in ("wecom", "dingtalk", "feishu"):
            self.assertFalse([x for x in self.robots.delivered(robot) if "W-1-102" in x[1]])

    def test_quiet_hours_hold_minor_and_never_critical(self):
        feishu = [text for _, text, _ in self.robots.delivered("feishu")]
        self.assertEqual(len([t for t in feishu if "火警" in t]), 1, feishu)
        self.assertFalse([t for t in feishu if "消防屏蔽" in t], feishu)
        disabled_id, raised_ms = self.incident("fire_disabled")
        (due_ms, delivered), = db_rows(self.stack, "SELECT due_ms, delivered_ms FROM notifications"
                                       " WHERE incident = ? AND channel = 'feishu_office'",
                                       (disabled_id,))
        self.assertIsNone(delivered)
        self.assertGreater(due_ms - raised_ms, 50 * 60 * 1000, "held until the quiet hours end")

    def test_every_transition_queued_once_per_channel(self):
        rows = db_rows(self.stack, "SELECT cause, channel, count(*) FROM notifications"
                       " GROUP BY cause, channel HAVING count(*) > 1")
        self.assertEqual(rows, [])
        undelivered = db_rows(self.stack, "SELECT cause, channel, last_error FROM notifications"
                              " WHERE delivered_ms IS NULL AND channel != 'feishu_office'")
        self.assertEqual(undelivered, [])

    def test_z_after_a_reload_alerts_still_go_out(self):
        """Runs last (the shared stack): after SIGHUP the sender starts again
        on the reloaded config and a new fire alarm reaches WeCom."""
        log = os.path.join(self.stack.workdir, "gw.log")
        self.stack.gw.proc.send_signal(signal.SIGHUP)

        def reloaded():
            with open(log, errors="replace") as f:
                text = f.read()
            start = text.rfind("reload: loading")
            return start >= 0 and "reload: " in text[start + len("reload: loading"):]
        wait_for(reloaded, 15, what="the reload's result in the log")
        time.sleep(1)
        self.stack.control.call(cmd="event", device="FP-1", event="zone", zone=6, state="alarm")
        alarm = wait_for(lambda: db_rows(self.stack, "SELECT id FROM incidents WHERE rule = 'fire_alarm'"
                                         " AND zone = 5"), 15, what="the zone 6 alarm")[0][0]
        wait_for(lambda: [x for x in self.robots.delivered("wecom") if f"?incident={alarm}" in x[1]],
                 15, what="the alarm raised after the reload on WeCom")

    def test_no_secret_in_the_log(self):
        log = self.stack.gw.output() if hasattr(self.stack.gw, "output") else ""
        with open(os.path.join(self.stack.workdir, "gw.log"), errors="replace") as f:
            log += f.read()
        self.assertIn("delivered on channel wecom_duty", log)
        for secret in SECRETS:
            self.assertNotIn(secret, log)


if __name__ == "__main__":
    unittest.main()
