"""Duty roster and escalation on the robots (stand-ins of
notify_standins.py): after a shift handover to li.gong, the fire alarm's
WeCom message also @-mentions li.gong's mobile (notify.people); an alarm
nobody acknowledges goes to the supervisor after the route's after_s (8 s
here), once, and the step is in the patrol log; an alarm a patrol check-in
confirmed in time, and one the desk acknowledged (estate-ctl incident ID ack),
are not escalated. The work order the alarm opens goes to
a route with workorder_events = ["created"], once."""
import os
import shutil
import sqlite3
import tempfile
import time
import unittest
import warnings

from harness import DEMO_GW, ROOT, Stack, wait_for
from notify_standins import Mailbox, Robots, write_gw_config

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")
SUPERVISOR = "13900000009"
ON_DUTY = "13800000003"
PEOPLE = f"""
  people = ( {{ name = "li.gong"; mobile = "{ON_DUTY}"; email = "li.gong@example.com"; }} );"""
ESCALATING_ROUTE = f""",
    {{ channel = "wecom_duty"; rules = ["fire_alarm"]; on_duty = true;
       escalation = ( {{ after_s = 8; to = ["{SUPERVISOR}"]; }} ); }},
    {{ channel = "feishu_office"; workorder_events = ["created"]; }}"""


def db_rows(stack, sql, args=()):
    con = sqlite3.connect(f"file:{os.path.join(stack.data_dir, 'estate.db')}?mode=ro",
                          uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


class NotifyEscalationTest(unittest.TestCase):
    def setUp(self):
        warnings.simplefilter("ignore", UserWarning)
        self.confdir = tempfile.mkdtemp(prefix="estate-notify-")
        self.addCleanup(shutil.rmtree, self.confdir, True)
        self.robots = Robots().start()
        self.addCleanup(self.robots.stop)
        self.mail = Mailbox().start()
        self.addCleanup(self.mail.stop)
        conf = write_gw_config(self.confdir, DEMO_GW, self.robots.port, self.mail.port,
                               extra_routes=ESCALATING_ROUTE, extra_notify=PEOPLE)
        self.stack = Stack(gw_conf=conf, gw_sets=[f"http.users_file={DEMO_USERS}"])
        self.addCleanup(self.stack.close)
        self.stack.start()

    def zone_incident(self, zone):
        rows = db_rows(self.stack, "SELECT id, raised_ms FROM incidents WHERE rule = 'fire_alarm'"
                       " AND subject = 'FP-1' AND zone = ?", (zone - 1,))
        return rows[0] if rows else None

    def wecom_texts(self, needle):
        return [(t, text, body) for t, text, body in self.robots.delivered("wecom") if needle in text]

    def test_on_duty_mention_and_escalation(self):
        try:
            self.run_scenario()
        except BaseException:
            self.stack.dump_logs()
            raise

    def run_scenario(self):
        stack = self.stack
        wait_for(lambda: stack.readings(), 30, what="first readings")
        stack.ctl("handover", "--from", "wang.wu", "--to", "li.gong")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=1, state="alarm")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=3, state="alarm")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=5, state="alarm")
        wait_for(lambda: self.zone_incident(1) and self.zone_incident(3) and self.zone_incident(5),
                 15, what="three alarms")
        confirmed_id, _ = self.zone_incident(3)
        stack.ctl("patrol", "checkin", "--location", "1号楼 5层", "--text", "smoke detector, no fire",
                  "--incident", str(confirmed_id), "--verdict", "confirm")
        acked_id, _ = self.zone_incident(5)
        stack.ctl("--user", "frontdesk", "incident", str(acked_id), "ack")
        open_id, raised_ms = self.zone_incident(1)

        wait_for(lambda: self.wecom_texts("升级"), 25, what="the escalation on WeCom")
        time.sleep(3)  # a second escalation, or one for the confirmed alarm, would be here by now
        self.assertEqual(self.robots.problems, [])
        escalations = self.wecom_texts("升级")
        self.assertEqual(len(escalations), 1, escalations)
        t, text, body = escalations[0]
        self.assertIn(f"?incident={open_id}", text)
        self.assertNotIn(f"?incident={confirmed_id}", text)
        self.assertNotIn(f"?incident={acked_id}", text)
        self.assertEqual(body["text"]["mentioned_mobile_list"], [SUPERVISOR])
        self.assertGreaterEqual(t - raised_ms / 1000, 8.0, "not before after_s")
        self.assertLess(t - raised_ms / 1000, 14.0, "soon after after_s")

        # The first message of each alarm mentioned the duty phone and li.gong, on duty.
        first = [b for _, text, b in self.robots.delivered("wecom")
                 if "升级" not in text and f"?incident={open_id}" in text]
        self.assertEqual(len(first), 1, first)
        self.assertEqual(first[0]["text"]["mentioned_mobile_list"], ["13800000001", ON_DUTY])

        entries = db_rows(stack, "SELECT incident, text FROM patrol WHERE kind = 'escalation'")
        self.assertEqual([e[0] for e in entries], [open_id], entries)
        self.assertIn(SUPERVISOR, entries[0][1])

        # The work order the alarm opened went to Feishu once ("created").
        (order,), = db_rows(stack, "SELECT id FROM workorders WHERE incident = ?", (open_id,))
        created = [text for _, text, _ in self.robots.delivered("feishu")
                   if f"【工单 #{order} 新建】" in text]
        self.assertEqual(len(created), 1, self.robots.delivered("feishu"))
        self.assertIn(f"?workorder={order}", created[0])


if __name__ == "__main__":
    unittest.main()
