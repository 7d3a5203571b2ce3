"""MQTT commands run once: a retained command (which the broker would hand
the gateway again at every reconnect) is refused, cleared and never moves a
valve, also across a restart; a request_id sent five times makes one patrol
entry and five identical answers; a burst of check-ins from one account is
rate limited, and every refused one changes nothing. The demo stack with its
users file; each test starts its own."""
import json
import os
import threading
import time
import unittest
import uuid

from faultlib import Stack, wait_for
from harness import ROOT

import paho.mqtt.client as mqtt

USERS = os.path.join(ROOT, "etc", "demo", "users.conf")


class CommandReplayTest(unittest.TestCase):
    def setUp(self):
        self.stack = Stack(gw_sets=[f"http.users_file={USERS}"])
        self.addCleanup(self.stack.close)

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    def start(self, gw=True):
        self.stack.start(gw=gw)
        if gw:
            self.wait_online()

    def wait_online(self, since=0.0):
        wait_for(lambda: any(s.get("state") == "online"
                             for s in self.stack.sub.json_on("/status", since)), 20, what="online")

    def results(self, verb, request_id, since=0.0):
        return [r for r in self.stack.sub.json_on(f"/cmd/{verb}/result", since)
                if r.get("request_id") == request_id]

    def send(self, verb, payload):
        since = time.time()
        self.stack.sub.publish(f"{self.stack.prefix}/cmd/{verb}", json.dumps(payload))
        return wait_for(lambda: (self.results(verb, payload["request_id"], since) or [None])[0],
                        15, what=f"result of {verb} {payload['request_id']}")

    def patrol(self):
        res = self.stack.ctl("--json", "patrol", "log", "--limit", "100000")
        return json.loads(res.stdout)

    def valve(self, meter="W-1-101"):
        return self.stack.control.call(cmd="get", device=meter).get("valve")

    def retained_on(self, topic, seconds=2.0):
        """Non-empty retained messages a fresh client is given on topic."""
        got = []
        client = mqtt.Client(client_id=f"retained-check-{uuid.uuid4().hex[:8]}")
        client.on_message = lambda c, u, m: got.append(m) if m.retain and m.payload else None
        client.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
        client.connect("127.0.0.1", self.stack.broker.port)
        client.loop_start()
        time.sleep(seconds)
        client.loop_stop()
        client.disconnect()
        return got

    def test_retained_valve_command_never_moves_the_valve(self):
        self.start(gw=False)
        topic = f"{self.stack.prefix}/cmd/valve"
        payload = {"request_id": "retained-close", "user": "engineer", "meter": "W-1-101",
                   "action": "close"}
        info = self.stack.sub.client.publish(topic, json.dumps(payload), qos=1, retain=True)
        info.wait_for_publish(5)
        self.stack.gw.start()
        self.wait_online()
        result = wait_for(lambda: (self.results("valve", "retained-close") or [None])[0], 20,
                          what="the retained command's result")
        self.assertIs(result.get("ok"), False, result)
        self.assertIn("retained", result.get("error", ""), result)
        self.assertEqual(self.retained_on(topic), [], "the retained command was not cleared")
        # A restart finds nothing to run again.
        since = time.time()
        self.stack.restart_gw()
        self.wait_online(since)
        time.sleep(2)
        self.assertEqual(self.results("valve", "retained-close", since), [])
        self.assertEqual(self.valve(), "open")
        self.assertFalse([e for e in self.patrol() if e.get("kind") == "valve"])

    def test_request_id_replayed_five_times_makes_one_entry(self):
        self.start()
        payload = {"request_id": "replay-" + uuid.uuid4().hex[:8], "user": "frontdesk",
                   "location": "lobby", "text": "replayed round"}
        answers = [self.send("patrol-checkin", dict(payload)) for _ in range(5)]
        for a in answers:
            self.assertIs(a.get("ok"), True, a)
            self.assertEqual(a, answers[0])
        time.sleep(1)
        entries = [e for e in self.patrol() if "replayed round" in e.get("text", "")]
        self.assertEqual(len(entries), 1, entries)
        # After a restart the id is still known.
        since = time.time()
        self.stack.restart_gw()
        self.wait_online(since)
        self.assertEqual(self.send("patrol-checkin", dict(payload)), answers[0])
        time.sleep(1)
        self.assertEqual(len([e for e in self.patrol() if "replayed round" in e.get("text", "")]), 1)

    def test_burst_of_checkins_from_one_account_is_rate_limited(self):
        self.start()
        since = time.time()
        ids = [f"burst-{i}-{uuid.uuid4().hex[:6]}" for i in range(200)]
        topic = f"{self.stack.prefix}/cmd/patrol-checkin"
        for i, rid in enumerate(ids):
            self.stack.sub.client.publish(topic, json.dumps(
                {"request_id": rid, "user": "frontdesk", "location": "gate",
                 "text": f"burst entry {i}"}), qos=1)

        def all_answered():
            seen = {r.get("request_id"): r
                    for r in self.stack.sub.json_on("/cmd/patrol-checkin/result", since)}
            return seen if all(rid in seen for rid in ids) else None
        seen = wait_for(all_answered, 30, what="an answer to every check-in")
        ok = [rid for rid in ids if seen[rid].get("ok") is True]
        limited = [rid for rid in ids if "rate limited" in seen[rid].get("error", "")]
        self.assertEqual(len(ok) + len(limited), len(ids), [seen[r] for r in ids][:5])
        self.assertGreater(len(limited), 100, "a burst of 200 was not limited")
        self.assertLessEqual(len(ok), 60)
        time.sleep(1)
        entries = [e for e in self.patrol() if "burst entry" in e.get("text", "")]
        self.assertEqual(len(entries), len(ok), "a refused check-in made an entry")
        # Another account is not held back by front desk's burst.
        r = self.send("patrol-checkin", {"request_id": "other-" + uuid.uuid4().hex[:6],
                                         "user": "engineer", "location": "plant", "text": "fine"})
        self.assertIs(r.get("ok"), True, r)


class CommandRolesTest(unittest.TestCase):
    """mqtt.command_roles caps the roles an MQTT command may claim: with
    "frontdesk,engineer" a command naming the supervisor is refused and
    changes nothing; front desk still works."""

    def setUp(self):
        self.stack = Stack(gw_sets=[f"http.users_file={USERS}",
                                    "mqtt.command_roles=frontdesk,engineer"])
        self.addCleanup(self.stack.close)
        self.stack.start()
        wait_for(lambda: any(s.get("state") == "online"
                             for s in self.stack.sub.json_on("/status")), 20, what="online")

    def send(self, verb, payload):
        since = time.time()
        self.stack.sub.publish(f"{self.stack.prefix}/cmd/{verb}", json.dumps(payload))
        return wait_for(lambda: next((r for r in self.stack.sub.json_on(f"/cmd/{verb}/result", since)
                                      if r.get("request_id") == payload["request_id"]), None),
                        15, what=f"result of {verb}")

    def test_supervisor_refused_over_mqtt(self):
        r = self.send("occupancy", {"request_id": "sup-1", "user": "supervisor", "unit": "1-101",
                                    "occupancy": "vacant"})
        self.assertIs(r.get("ok"), False, r)
        self.assertIn("may not send commands over MQTT", r.get("error", ""))
        r = self.send("patrol-checkin", {"request_id": "fd-1", "user": "frontdesk",
                                         "location": "gate", "text": "ok"})
        self.assertIs(r.get("ok"), True, r)
        res = self.stack.ctl("--json", "patrol", "log", "--limit", "1000")
        self.assertFalse([e for e in json.loads(res.stdout) if e.get("kind") == "occupancy"])


if __name__ == "__main__":
    unittest.main()
