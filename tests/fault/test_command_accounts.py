"""MQTT commands bound to the broker account that sent them
(mqtt.commands_by_account): a real mosquitto with a password file and an ACL
whose pattern `write P/cmd/by/%u/#` lets each account publish only on its
own command topics. A front-desk account acts as the front desk and nothing
else: naming the supervisor in the payload is refused, publishing on the
supervisor's topic never reaches the gateway, the old P/cmd/<verb> form is
refused, and a role refusal holds; none of these changes anything."""
import json
import os
import subprocess
import time
import unittest
import uuid

import paho.mqtt.client as mqtt

from rtu_site import wait_for  # also puts tests/integration on sys.path
from harness import Stack
from faultlib import query

PREFIX = "estate/test/gw1"
ACCOUNTS = {"frontdesk": "desk-secret", "supervisor": "super-secret"}


def broker_conf(workdir):
    passwd = os.path.join(workdir, "mosquitto.passwd")
    for i, (name, password) in enumerate(ACCOUNTS.items()):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) +
                       [passwd, name, password], check=True, capture_output=True)
    acl = os.path.join(workdir, "mosquitto.acl")
    with open(acl, "w") as f:
        # Anonymous clients here are the gateway and the test's observer;
        # accounts read everything and write only their own command topics.
        f.write("topic readwrite estate/#\n\n")
        for name in ACCOUNTS:
            f.write(f"user {name}\ntopic read estate/#\n\n")
        f.write(f"pattern write {PREFIX}/cmd/by/%u/#\n")
    for path in (passwd, acl):
        os.chmod(path, 0o600)
    return f"password_file {passwd}\nacl_file {acl}\n"


class Account:
    """An MQTT client signed in to the broker as one account."""

    def __init__(self, port, name):
        self.name = name
        self.client = mqtt.Client(client_id=f"{name}-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(name, ACCOUNTS[name])
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def publish(self, topic, payload):
        self.client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class CommandAccountsTest(unittest.TestCase):
    def setUp(self):
        import tempfile
        self.confdir = tempfile.mkdtemp(prefix="estate-acl-")
        self.stack = Stack(gw_sets=["mqtt.commands_by_account=true"],
                           broker_conf=broker_conf(self.confdir)).start()
        self.addCleanup(self.stack.close)
        try:
            wait_for(lambda: self.stack.readings(), 20, what="readings")
        except Exception:
            self.stack.dump_logs()
            raise
        self.desk = Account(self.stack.broker.port, "frontdesk")
        self.addCleanup(self.desk.close)

    def result(self, topic, request_id, timeout=15):
        def find():
            for r in self.stack.sub.json_on(topic.replace(PREFIX, "", 1) + "/result"):
                if r.get("request_id") == request_id:
                    return r
            return None
        return wait_for(find, timeout, what=f"result on {topic}/result")

    def send(self, client, topic, payload):
        rid = uuid.uuid4().hex[:16]
        client.publish(topic, dict(payload, request_id=rid))
        return rid

    def query(self, sql):
        return query(self.stack, sql)

    def state(self):
        return (dict(self.query("SELECT id, occupancy FROM units")),
                self.query("SELECT count(*) FROM patrol")[0][0])

    def test_an_account_acts_only_as_itself(self):
        time.sleep(1.5)  # the start-up state is committed
        before = self.state()
        own = f"{PREFIX}/cmd/by/frontdesk/occupancy"
        occ = {"unit": "1-101", "occupancy": "vacant"}

        rid = self.send(self.desk, own, dict(occ, user="supervisor"))
        r = self.result(own, rid)
        self.assertIs(r["ok"], False, r)
        self.assertIn("broker account frontdesk acts as gateway user frontdesk", r["error"])

        # The broker's ACL drops what frontdesk publishes as the supervisor.
        theirs = f"{PREFIX}/cmd/by/supervisor/valve"
        rid = self.send(self.desk, theirs, {"meter": "W-1-101", "action": "close"})
        time.sleep(3)
        self.assertFalse([m for m in self.stack.sub.json_on("/cmd/by/supervisor/valve")
                          if m.get("request_id") == rid], "the ACL let it through")

        # The old form names a user in the payload: refused, nothing proves it.
        old = f"{PREFIX}/cmd/occupancy"
        rid = uuid.uuid4().hex[:16]
        self.stack.sub.publish(old, json.dumps(dict(occ, user="supervisor", request_id=rid)))
        r = self.result(old, rid)
        self.assertIs(r["ok"], False, r)
        self.assertIn("commands are taken only on", r["error"])

        # A role refusal holds on the account's own topic.
        valve = f"{PREFIX}/cmd/by/frontdesk/valve"
        rid = self.send(self.desk, valve, {"meter": "W-1-101", "action": "close"})
        r = self.result(valve, rid)
        self.assertIs(r["ok"], False, r)
        self.assertIn("role frontdesk may not", r["error"])

        time.sleep(1.5)
        self.assertEqual(self.state(), before, "a refused command changed something")

        # What the front desk may do, it does, as itself.
        rid = self.send(self.desk, own, occ)
        r = self.result(own, rid)
        self.assertIs(r["ok"], True, r)
        wait_for(lambda: self.state()[0]["1-101"] == "vacant", 10, what="1-101 vacant")
        authors = [a for (a,) in self.query("SELECT author FROM patrol ORDER BY seq DESC LIMIT 1")]
        self.assertEqual(authors, ["frontdesk"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
