"""Issue 5, security: a command from a role that may not send it is refused
and changes nothing.

The demo stack with its users file (etc/demo/users.conf: frontdesk,
engineer, supervisor, viewer). Commands on P/cmd/<verb> naming a user whose
role may not run them, an unknown user, malformed JSON, an oversize
payload, wrong types, unknown arguments and an unknown verb each get
{"ok":false,"error":...} on P/cmd/<verb>/result, and afterwards the units'
occupancy is as before and the patrol log holds no occupancy or valve entry.
On a stack of its own, a supervisor sets a unit vacant (ok, stored, in the
patrol log), an engineer closes a valve (ok, in the patrol log) and the same
valve asked again at once is refused by the rate limit. The data directory
is 0700 and the database files 0600. Each test starts its own stack."""
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from rtu_site import wait_for  # also puts tests/integration on sys.path
from harness import ROOT, Stack, wait_port

import paho.mqtt.client as mqtt

USERS = os.path.join(ROOT, "etc", "demo", "users.conf")


class CommandAuthTest(unittest.TestCase):
    """Each test has its own demo stack: none depends on what another did."""

    def setUp(self):
        self.stack = Stack(gw_sets=[f"http.users_file={USERS}"]).start()
        self.addCleanup(self.stack.close)
        try:
            wait_for(lambda: any(s.get("state") == "online"
                                 for s in self.stack.sub.json_on("/status")), 20, what="online")
            wait_for(lambda: self.stack.readings(), 20, what="readings")
        except Exception:
            self.stack.dump_logs()
            raise

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    # ---- helpers ----

    def send(self, verb, payload, request_id=None):
        """Publishes payload (dict, str or bytes) on P/cmd/<verb>; returns the
        result published on P/cmd/<verb>/result for it."""
        topic = f"{self.stack.prefix}/cmd/{verb}"
        if isinstance(payload, dict):
            rid = payload.setdefault("request_id", uuid.uuid4().hex[:16])
            request_id = rid if isinstance(rid, str) else None
            payload = json.dumps(payload)
        since = time.time()
        self.stack.sub.publish(topic, payload)

        def result():
            for r in self.stack.sub.json_on(f"/cmd/{verb}/result", since):
                if r.get("request_id") == request_id:
                    return r
            return None
        return wait_for(result, 15, what=f"result of {verb} {str(payload)[:80]}")

    def refused(self, verb, payload, error_part, request_id=None):
        r = self.send(verb, payload, request_id)
        self.assertIs(r.get("ok"), False, r)
        self.assertIn(error_part, r.get("error", ""), r)
        return r

    def database(self):
        data = self.stack.data_dir
        for name in sorted(os.listdir(data)):
            path = os.path.join(data, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    if f.read(16) == b"SQLite format 3\x00":
                        return path
        raise AssertionError(f"no SQLite database in {data}")

    def query(self, sql, *args):
        db = sqlite3.connect(f"file:{self.database()}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def occupancy(self):
        return dict(self.query("SELECT id, occupancy FROM units"))

    def patrol(self):
        res = self.stack.ctl("--json", "patrol", "log", "--limit", "100000")
        return json.loads(res.stdout)

    # ---- tests ----

    def test_refused_commands_change_nothing(self):
        time.sleep(1.5)  # the store has committed the start-up state
        before = self.occupancy()
        self.assertEqual(before["1-101"], "occupied")
        patrol_before = [e["seq"] for e in self.patrol()]

        occ = {"unit": "1-101", "occupancy": "vacant"}
        self.refused("occupancy", {"user": "viewer", **occ}, "role viewer may not")
        self.refused("occupancy", {"user": "engineer", **occ}, "role engineer may not")
        self.refused("valve", {"user": "frontdesk", "meter": "W-1-101", "action": "close"},
                     "role frontdesk may not")
        self.refused("valve", {"user": "viewer", "meter": "W-1-101", "action": "open"},
                     "role viewer may not")
        self.refused("occupancy", {"user": "mallory", **occ}, "unknown or disabled user")
        self.refused("occupancy", dict(occ), "unknown or disabled user")  # nobody named
        self.refused("occupancy", {"user": ["supervisor"], **occ}, "unknown or disabled user")
        # Wrong types, unknown ids, unknown arguments.
        self.refused("occupancy", {"user": "supervisor", "unit": 1101, "occupancy": "vacant"},
                     '"unit" must be')
        self.refused("occupancy", {"user": "supervisor", "unit": "1-101", "occupancy": True},
                     '"occupancy" must be')
        self.refused("occupancy", {"user": "supervisor", "unit": "1-101", "occupancy": "gone"},
                     '"occupancy" must be')
        self.refused("occupancy", {"user": "supervisor", "unit": "9-999", "occupancy": "vacant"},
                     "unknown unit")
        self.refused("occupancy", {"user": "supervisor", "resident_phone": "13800000000", **occ},
                     "unknown argument")
        self.refused("occupancy", {"user": "supervisor", "unit": "1-101" * 40,
                                   "occupancy": "vacant"}, '"unit" must be')
        self.refused("valve", {"user": "supervisor", "meter": "W-1-101", "action": "wiggle"},
                     '"action" must be')
        self.refused("valve", {"user": "supervisor", "meter": "W-MASTER", "action": "close"},
                     "has no valve")
        self.refused("valve", {"user": "supervisor", "meter": "W-1-101", "action": "close",
                               "force": True}, "unknown argument")
        self.refused("occupancy", {"user": "supervisor", "request_id": 42, **occ},
                     '"request_id" must be', request_id=None)
        # Not JSON objects, too large, unknown verb.
        self.refused("occupancy", "{not json", "not a JSON object", request_id=None)
        self.refused("occupancy", '["supervisor"]', "not a JSON object", request_id=None)
        self.refused("occupancy", b"\xff\xfe\x00garbage", "not a JSON object", request_id=None)
        big = json.dumps({"user": "supervisor", **occ, "pad": "x" * 20000})
        self.refused("occupancy", big, "larger than", request_id=None)
        self.refused("frobnicate", {"user": "supervisor"}, "unknown command")
        self.refused("workorder", {"user": "viewer", "action": "create", "category": "water",
                                   "description": "x"}, "may not")

        time.sleep(1.5)
        self.assertEqual(self.occupancy(), before)
        new = [e for e in self.patrol() if e["seq"] not in patrol_before]
        self.assertFalse([e for e in new if e.get("kind") in ("occupancy", "valve", "workorder")],
                         new)
        self.assertTrue(self.stack.gw.alive())

    def test_allowed_commands_act_and_are_logged(self):
        r = self.send("occupancy", {"user": "supervisor", "unit": "1-101", "occupancy": "vacant"})
        self.assertIs(r.get("ok"), True, r)
        wait_for(lambda: self.occupancy().get("1-101") == "vacant", 10, what="1-101 vacant stored")
        entries = wait_for(lambda: [e for e in self.patrol() if e.get("kind") == "occupancy"], 10,
                           what="occupancy in the patrol log")
        self.assertEqual(entries[-1].get("author"), "supervisor")
        self.assertIn("1-101", entries[-1].get("text", ""))

        r = self.send("valve", {"user": "engineer", "meter": "W-1-101", "action": "close"})
        self.assertIs(r.get("ok"), True, r)
        # Rate limit: the same meter again at once, whoever asks.
        r = self.refused("valve", {"user": "supervisor", "meter": "W-1-101", "action": "open"},
                         "rate limit")
        self.assertGreater(r.get("retry_after_s", 0), 0)
        valves = wait_for(lambda: [e for e in self.patrol() if e.get("kind") == "valve"], 10,
                          what="valve entry in the patrol log")
        asked = [e for e in valves if "asked" in e.get("text", "") or "请求" in e.get("text", "")]
        self.assertEqual(len(asked), 1, valves)
        self.assertEqual(asked[0].get("author"), "engineer")
        # Nothing reopens it: the simulator shows it closed, and stays so.
        wait_for(lambda: self.stack.control.call(cmd="get", device="W-1-101").get("valve")
                 == "closed", 15, what="valve closed on the device")

    def test_data_directory_and_database_files_private(self):
        mode = stat.S_IMODE(os.stat(self.stack.data_dir).st_mode)
        self.assertEqual(mode & 0o077, 0, oct(mode))
        for name in os.listdir(self.stack.data_dir):
            path = os.path.join(self.stack.data_dir, name)
            if os.path.isfile(path):
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode) & 0o077, 0,
                                 f"{name} is {oct(os.stat(path).st_mode)}")


class BrokerAclTest(unittest.TestCase):
    """etc/mosquitto/acl (with the test's prefix) in a real mosquitto with a
    password per account: the gateway works as estate-gw; a viewer cannot
    publish commands at all, front desk cannot publish valve commands, and
    what the ACL lets through still meets the gateway's role check."""

    ACCOUNTS = ("estate-gw", "frontdesk", "engineer", "supervisor", "viewer")

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="estate-acl-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.stack = Stack(gw_sets=[f"http.users_file={USERS}", "mqtt.username=estate-gw",
                                    f"mqtt.password_file={self.workdir}/gw.pass"])
        self.addCleanup(self.stack.close)
        prefix = self.stack.prefix
        with open(os.path.join(ROOT, "etc", "mosquitto", "acl")) as f:
            acl = f.read().replace("estate/sunshine-garden/gw1", prefix)
        acl_path = os.path.join(self.workdir, "acl")
        with open(acl_path, "w") as f:
            f.write(acl)
        passwd = os.path.join(self.workdir, "passwd")
        for i, account in enumerate(self.ACCOUNTS):
            subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) +
                           [passwd, account, f"pw-{account}"], check=True, capture_output=True,
                           timeout=30)
        with open(os.path.join(self.workdir, "gw.pass"), "w") as f:
            f.write("pw-estate-gw\n")
        for path in (acl_path, passwd, os.path.join(self.workdir, "gw.pass")):
            os.chmod(path, 0o600)
        with open(self.stack.broker.conf, "w") as f:
            f.write(("user root\n" if os.geteuid() == 0 else "") +
                    f"listener {self.stack.broker.port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {passwd}\nacl_file {acl_path}\npersistence false\n")
        self.stack.broker.start()
        self.stack.sim.start()
        wait_port(self.stack.control_port)
        for p in self.stack.ports.values():
            wait_port(p)
        self.stack.gw.start()
        self.clients = {}

    def client(self, account, subscribe=None):
        messages = []
        lock = threading.Lock()
        c = mqtt.Client(client_id=f"acl-{account}-{time.time_ns()}")
        c.username_pw_set(account, f"pw-{account}")

        def on_message(cl, u, m):
            with lock:
                messages.append((m.topic, m.payload))
        c.on_message = on_message
        if subscribe:
            c.on_connect = lambda cl, u, f, rc: cl.subscribe(subscribe, 1)
        c.connect("127.0.0.1", self.stack.broker.port, 30)
        c.loop_start()
        self.addCleanup(c.disconnect)
        self.addCleanup(c.loop_stop)
        c.messages = messages
        return c

    def publish(self, client, verb, payload):
        client.publish(f"{self.stack.prefix}/cmd/{verb}", json.dumps(payload), qos=1) \
            .wait_for_publish(5)

    def results(self, watcher, request_id):
        out = []
        for topic, payload in list(watcher.messages):
            if topic.endswith("/result") and payload:
                r = json.loads(payload)
                if r.get("request_id") == request_id:
                    out.append(r)
        return out

    def test_acl_confines_accounts(self):
        p = self.stack.prefix
        watcher = self.client("supervisor", f"{p}/#")
        viewer = self.client("viewer", f"{p}/status")
        wait_for(lambda: any(t == f"{p}/status" and b"online" in m for t, m in viewer.messages), 20,
                 what="viewer sees the gateway online (gateway logged in as estate-gw)")
        frontdesk = self.client("frontdesk", f"{p}/cmd/+/result")
        time.sleep(0.5)

        occ = {"unit": "1-101", "occupancy": "vacant"}
        # Blocked by the broker: the gateway never sees these.
        self.publish(viewer, "occupancy", {"user": "supervisor", "request_id": "v1", **occ})
        self.publish(frontdesk, "valve", {"user": "supervisor", "request_id": "f1",
                                          "meter": "W-1-101", "action": "close"})
        # Let through by the broker, refused by the gateway's role check.
        self.publish(frontdesk, "occupancy", {"user": "viewer", "request_id": "f2", **occ})
        # Allowed by both.
        self.publish(frontdesk, "occupancy", {"user": "frontdesk", "request_id": "f3",
                                              "unit": "1-102", "occupancy": "vacant"})
        wait_for(lambda: self.results(watcher, "f3"), 15, what="result of an allowed command")
        f2 = wait_for(lambda: self.results(watcher, "f2"), 15, what="result of f2")
        self.assertIs(f2[0]["ok"], False)
        self.assertIs(self.results(watcher, "f3")[0]["ok"], True)
        time.sleep(1.0)
        self.assertEqual(self.results(watcher, "v1"), [])
        self.assertEqual(self.results(watcher, "f1"), [])
        # Front desk receives its own verbs' results.
        self.assertTrue(any(t.endswith("/cmd/occupancy/result") for t, _ in frontdesk.messages))
        self.assertTrue(self.stack.gw.alive())
        self.assertNotIn("pw-estate-gw", self.stack.gw.output())


if __name__ == "__main__":
    unittest.main(verbosity=2)
