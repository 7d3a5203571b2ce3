"""Acknowledging an alert is kept by the gateway, not by the browser that
clicked it: the front desk acknowledges a fire alarm in its console session;
a second session (the supervisor's) then sees who acknowledged it and when,
the acknowledgement goes out on P/alerts and is in the patrol log, only the
first one counts, a viewer may not acknowledge, and estate-ctl acknowledges
as the gateway user it acts as."""
import json
import os
import shutil
import unittest

from harness import ROOT, Stack, wait_for
from test_http_api import PASSWORDS, Client

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")


class AlertAckTest(unittest.TestCase):
    def setUp(self):
        stack = Stack()
        users = os.path.join(stack.workdir, "users.conf")
        shutil.copy(DEMO_USERS, users)
        os.chmod(users, 0o600)
        stack.gw_argv += ["--set", f"http.users_file={users}"]
        from harness import Process
        stack.gw = Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
        self.stack = stack.start()
        self.addCleanup(self.stack.close)
        from harness import wait_port
        wait_port(stack.http_port, 20)
        self.http = Client(f"http://127.0.0.1:{stack.http_port}")
        self.tokens = {u: self.http.login(u) for u in PASSWORDS}

    def open_alerts(self, user):
        status, _, body = self.http.call("GET", "/api/alerts?state=active", token=self.tokens[user])
        self.assertEqual(status, 200, body)
        return {a["id"]: a for a in (body["alerts"] if isinstance(body, dict) else body)}

    def raise_zone(self, zone):
        self.stack.control.call(cmd="event", device="FP-1", event="zone", zone=zone, state="alarm")
        return wait_for(lambda: [a for a in self.open_alerts("supervisor").values()
                                 if a["rule"] == "fire_alarm" and a.get("zone") == zone], 20,
                        what=f"the zone {zone} fire alarm")[0]["id"]

    def patrol_entries(self):
        status, _, body = self.http.call("GET", "/api/patrol?since=0", token=self.tokens["supervisor"])
        self.assertEqual(status, 200, body)
        return body["entries"] if isinstance(body, dict) else body

    def test_acknowledgement_is_the_gateways(self):
        alarm = self.raise_zone(2)
        self.assertNotIn("acked_by", self.open_alerts("frontdesk")[alarm])
        entries_before = len(self.patrol_entries())

        status, _, body = self.http.call("POST", f"/api/alerts/{alarm}/ack", {},
                                         token=self.tokens["viewer"])
        self.assertEqual(status, 403, body)

        status, _, body = self.http.call("POST", f"/api/alerts/{alarm}/ack", {},
                                         token=self.tokens["frontdesk"])
        self.assertEqual(status, 200, body)
        self.assertEqual(body["incident"]["acked_by"], "frontdesk", body)

        seen = self.open_alerts("supervisor")[alarm]  # another session, another user
        self.assertEqual(seen["acked_by"], "frontdesk", seen)
        self.assertIn("acked", seen)

        status, _, body = self.http.call("POST", f"/api/alerts/{alarm}/ack", {},
                                         token=self.tokens["engineer"])
        self.assertEqual(status, 409, body)
        self.assertIn("acknowledged already by frontdesk", json.dumps(body, ensure_ascii=False))
        self.assertEqual(self.open_alerts("supervisor")[alarm]["acked_by"], "frontdesk")

        updates = wait_for(lambda: [a for a in self.stack.alerts()
                                    if a.get("id") == alarm and a.get("acked_by") == "frontdesk"],
                           10, what="the acknowledgement on P/alerts")
        self.assertEqual(updates[0]["state"], "updated", updates[0])
        acks = [e for e in self.patrol_entries() if e.get("kind") == "ack"]
        self.assertEqual(len(acks), 1, acks)
        self.assertEqual(acks[0]["author"], "frontdesk")
        self.assertEqual(acks[0].get("incident"), alarm)
        self.assertEqual(len(self.patrol_entries()), entries_before + 1)

        # estate-ctl acknowledges as the gateway user it acts as.
        other = self.raise_zone(4)
        res = self.stack.ctl("--user", "viewer", "incident", str(other), "ack", check=False)
        self.assertNotEqual(res.returncode, 0, res.stdout)
        self.assertIn("role viewer may not", res.stderr)
        self.stack.ctl("--user", "engineer", "incident", str(other), "ack")
        self.assertEqual(self.open_alerts("frontdesk")[other]["acked_by"], "engineer")


if __name__ == "__main__":
    unittest.main(verbosity=2)
