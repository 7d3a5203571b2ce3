"""Storage faults and tampering: a full disk refuses actions instead of
answering them as done, keeps the events it cannot store (published when the
broker is back, stored when space returns) and lets the daemon start; a
patrol log cut short or rewritten consistently is caught at the next start
against the head retained on the broker (and by `estate-ctl patrol verify
--broker`), which is not overwritten; a damaged page is reported at start
and by the periodic integrity check, and /api/patrol/verify gives a verdict
rather than a 500. The full-disk cases mount a small tmpfs: they need root
and fail, never skip, without it."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from faultlib import FaultCase, db_path, log_lines, scalar, wait_for
from harness import ROOT, Process, Subscriber

DEMO_USERS = os.path.join(ROOT, "etc", "demo", "users.conf")
SIZE = "6m"


def http_call(stack, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{stack.http_port}{path}", data=data,
                                 method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, raw


def with_users(stack):
    users = os.path.join(stack.workdir, "users.conf")
    shutil.copy(DEMO_USERS, users)
    os.chmod(users, 0o600)
    stack.gw_argv += ["--set", f"http.users_file={users}"]
    stack.gw = Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))


def fill(path):
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=64k"], capture_output=True)


def retained(stack, suffix, timeout=5):
    """The retained message on prefix/suffix as a fresh subscriber sees it."""
    sub = Subscriber(stack.broker.port, f"{stack.prefix}/{suffix}")
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            msgs = sub.json_on(suffix)
            if msgs:
                return msgs[-1]
            time.sleep(0.1)
        return None
    finally:
        sub.close()


def verify_against_broker(stack):
    """`estate-ctl patrol verify --broker` with the stack's broker and prefix."""
    return stack.ctl("--set", f"mqtt.uri=tcp://127.0.0.1:{stack.broker.port}",
                     "--set", f"mqtt.topic_prefix={stack.prefix}", "patrol", "verify", "--broker",
                     check=False)


def patrol_hash(prev, seq, ts, kind, text, incident, workorder, author, detail):
    """The chain's hash, as store.h documents it (an attacker can compute it)."""
    def text_field(v):
        b = (v or "").encode()
        return b"T%d:" % len(b) + b + b","

    def int_field(v):
        d = str(v).encode()
        return b"I%d:" % len(d) + d + b","

    out = b"EGWP1" + text_field(prev) + int_field(seq) + int_field(ts) + text_field(kind)
    out += text_field(text)
    out += int_field(incident) if incident else b"N"
    out += int_field(workorder) if workorder else b"N"
    out += text_field(author)
    out += text_field(detail) if detail is not None else b"N"
    return hashlib.sha256(out).hexdigest()


class StorageFaultTest(FaultCase):
    def mount_small_tmpfs(self, path):
        self.assertEqual(os.geteuid(), 0, "the full-disk tests must run as root (they mount a tmpfs)")
        os.makedirs(path, exist_ok=True)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", path],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, f"cannot mount a tmpfs on {path}: {res.stderr.strip()}")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", path], capture_output=True))

    def stop_gw_first(self, stack):
        # The gateway must let go of the tmpfs before it is unmounted.
        self.addCleanup(stack.gw.stop)

    # ---- disk full ----

    def test_full_disk_refuses_actions_and_keeps_events(self):
        stack = self.stack(persistent_broker=True)
        with_users(stack)
        self.mount_small_tmpfs(stack.data_dir)
        self.stop_gw_first(stack)
        stack.start()
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM readings", default=0) > 50, 15,
                 what="readings stored")
        wait_for(lambda: _port_open(stack.http_port), 10, what="the console")
        status, body = http_call(stack, "POST", "/api/login",
                                 {"user": "frontdesk", "password": "front123"})
        self.assertEqual(status, 200, body)
        token = body["token"]

        filler = os.path.join(stack.data_dir, "filler")
        fill(filler)
        wait_for(lambda: log_lines(stack, r"store: writes failing"), 15, what="degraded mode")
        status, body = http_call(stack, "POST", "/api/workorders",
                                 {"category": "water", "unit": "1-101", "location": "kitchen",
                                  "description": "tap drips"}, token)
        self.assertEqual(status, 503, f"a work order that cannot be stored: {status} {body}")
        self.assertFalse(body.get("ok"), body)
        self.assertIn("stor", body.get("error", ""), body)
        self.assertEqual(scalar(stack, "SELECT count(*) FROM workorders"), 0)

        # A fire alarm while the disk is full and the broker is down.
        stack.broker.stop()
        time.sleep(1)
        t_alarm = time.time()
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=6, state="alarm")
        time.sleep(3)
        stack.broker.start()
        wait_for(lambda: [a for a in stack.alerts(t_alarm - 1) if a.get("rule") == "fire_alarm"],
                 20, what="the fire alarm on MQTT once the broker is back")
        wait_for(lambda: [a for a in stack.alerts() if a.get("rule") == "storage_failing" and
                          a.get("severity") == "critical"], 10,
                 what="a critical storage_failing alert")
        self.assertTrue(stack.gw.alive())

        os.unlink(filler)
        wait_for(lambda: log_lines(stack, r"store: writes work again"), 15, what="storing to resume")
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM incidents WHERE rule = 'fire_alarm'",
                                default=0) >= 1, 10,
                 what="the fire alarm stored once space returned")
        self.assertGreaterEqual(scalar(stack, "SELECT count(*) FROM patrol WHERE kind = 'incident' "
                                              "AND detail_json LIKE '%storage_failing%'",
                                       default=0), 1, "the storage failure in the patrol log")
        status, body = http_call(stack, "POST", "/api/workorders",
                                 {"category": "water", "unit": "1-101", "location": "kitchen",
                                  "description": "tap drips"}, token)
        self.assertEqual(status, 200, body)
        self.assertEqual(stack.gw.stop(), 0)

    def test_refused_occupancy_change_changes_nothing(self):
        """A unit set vacant while the disk is full is refused (503) and stays
        occupied for the rules too: water running there raises no vacant_flow.
        Once space returns, the same change is stored and the flow raised."""
        stack = self.stack()
        with_users(stack)
        self.mount_small_tmpfs(stack.data_dir)
        self.stop_gw_first(stack)
        stack.start()
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM readings", default=0) > 50, 15,
                 what="readings stored")
        wait_for(lambda: _port_open(stack.http_port), 10, what="the console")
        status, body = http_call(stack, "POST", "/api/login",
                                 {"user": "frontdesk", "password": "front123"})
        self.assertEqual(status, 200, body)
        token = body["token"]

        filler = os.path.join(stack.data_dir, "filler")
        fill(filler)
        wait_for(lambda: log_lines(stack, r"store: writes failing"), 15, what="degraded mode")
        status, body = http_call(stack, "POST", "/api/units/1-101/occupancy",
                                 {"occupancy": "vacant"}, token)
        self.assertEqual(status, 503, f"an occupancy change that cannot be stored: {status} {body}")
        t_flow = time.time()
        stack.control.call(cmd="event", device="W-1-101", event="flow", flow_m3h=3.0)
        time.sleep(12)

        def vacant_flow(since):
            return [a for a in stack.alerts(since)
                    if a.get("rule") == "vacant_flow" and a.get("unit") == "1-101"]
        self.assertEqual(vacant_flow(t_flow), [], "the refused change left the unit occupied")

        os.unlink(filler)
        wait_for(lambda: log_lines(stack, r"store: writes work again"), 15, what="storing to resume")
        status, body = http_call(stack, "POST", "/api/units/1-101/occupancy",
                                 {"occupancy": "vacant"}, token)
        self.assertEqual(status, 200, body)
        wait_for(lambda: vacant_flow(t_flow), 20, what="vacant_flow once the change is stored")

    def test_starts_on_a_full_disk(self):
        stack = self.stack()
        self.mount_small_tmpfs(stack.data_dir)
        self.stop_gw_first(stack)
        stack.start()
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM readings", default=0) > 50, 15,
                 what="readings stored")
        self.assertEqual(stack.gw.stop(), 0)
        fill(os.path.join(stack.data_dir, "filler"))
        t_start = time.time()
        stack.gw = Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
        stack.gw.start()
        wait_for(lambda: [a for a in stack.alerts(t_start) if a.get("rule") == "storage_failing"],
                 15, what="a storage_failing alert after starting on a full disk")
        time.sleep(2)
        self.assertTrue(stack.gw.alive(), "the daemon runs on a full disk")
        self.assertGreater(len(stack.readings(time.time() - 1.5)), 10, "readings published")

    # ---- patrol-log evidence ----

    def patrol_stack(self):
        # No simulator: without this every meter's meter_offline incident would go on
        # lengthening the chain after the head the test captures (building 3's serial
        # lines give up seconds after the TCP converters).
        stack = self.stack(gw_sets=("rules.meter_offline.enabled=false",))
        stack.start(sim=False)
        for i in range(5):
            stack.ctl("patrol", "checkin", "--location", "lobby", "--text", f"round {i}")
        head = wait_for(lambda: _head_at_least(stack, 5), 20, what="the retained patrol head")
        res = verify_against_broker(stack)
        self.assertEqual(res.returncode, 0, "the genuine chain holds the broker's head: "
                         + res.stdout + res.stderr)
        self.assertIn("retained head is in the chain", res.stdout)
        return stack, head

    def restart_and_expect_mismatch(self, stack, genuine):
        res = verify_against_broker(stack)
        self.assertNotEqual(res.returncode, 0, "estate-ctl sees the broker's head is missing")
        self.assertIn("not in the local chain", res.stderr)
        t0 = time.time()
        stack.gw = Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
        stack.gw.start()
        wait_for(lambda: [a for a in stack.alerts(t0) if a.get("rule") == "patrol_head_mismatch"
                          and a.get("severity") == "critical"], 15,
                 what="a critical patrol_head_mismatch alert")
        self.assertTrue(log_lines(stack, r"patrol log: .*retained head"), "a log line says why")
        time.sleep(7)  # past the first anchoring
        self.assertEqual(retained(stack, "patrol/head")["hash"], genuine["hash"],
                         "the genuine retained head is not overwritten")
        self.assertEqual(retained(stack, "patrol/head")["seq"], genuine["seq"])

    def test_truncated_patrol_log_detected(self):
        stack, head = self.patrol_stack()
        self.assertEqual(stack.gw.stop(), 0)
        con = sqlite3.connect(db_path(stack))
        with con:
            con.execute("DROP TRIGGER patrol_no_delete")
            con.execute("DROP TRIGGER patrol_anchors_no_delete")
            con.execute("DELETE FROM patrol WHERE seq > ?", (head["seq"] - 2,))
            con.execute("DELETE FROM patrol_anchors WHERE seq > ?", (head["seq"] - 2,))
        con.close()
        res = stack.ctl("patrol", "verify", check=False)
        self.assertEqual(res.returncode, 0, "the cut is invisible inside the database")
        self.restart_and_expect_mismatch(stack, head)

    def test_rewritten_patrol_log_detected(self):
        stack, head = self.patrol_stack()
        self.assertEqual(stack.gw.stop(), 0)
        con = sqlite3.connect(db_path(stack))
        with con:
            for t in ("patrol_no_update", "patrol_no_delete", "patrol_anchors_no_update",
                      "patrol_anchors_no_delete"):
                con.execute(f"DROP TRIGGER {t}")
            rows = con.execute("SELECT seq, ts_ms, kind, text, incident, workorder, author, "
                               "detail_json FROM patrol ORDER BY seq").fetchall()
            prev = "0" * 64
            changed = 0
            for seq, ts, kind, text, inc, wo, author, detail in rows:
                if "round 1" in text:
                    text = text.replace("round 1", "round 1 (nothing to report)")
                    changed += 1
                h = patrol_hash(prev, seq, ts, kind, text, inc, wo, author, detail)
                con.execute("UPDATE patrol SET text = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                            (text, prev, h, seq))
                prev = h
            con.execute("UPDATE patrol_anchors SET hash = (SELECT hash FROM patrol "
                        "WHERE patrol.seq = patrol_anchors.seq)")
        con.close()
        self.assertEqual(changed, 1, "one entry rewritten")
        res = stack.ctl("patrol", "verify", check=False)
        self.assertEqual(res.returncode, 0, "the rewrite is consistent inside the database: "
                         + res.stdout + res.stderr)
        self.restart_and_expect_mismatch(stack, head)

    # ---- damaged storage ----

    def test_damaged_patrol_page_reported_at_start(self):
        stack = self.stack()
        with_users(stack)
        stack.start(sim=False)
        for i in range(40):
            stack.ctl("patrol", "checkin", "--location", "lobby", "--text", f"round {i} " + "x" * 200)
        self.assertEqual(stack.gw.stop(), 0)
        con = sqlite3.connect(db_path(stack))
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'patrol'").fetchone()[0]
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        with open(db_path(stack), "r+b") as f:
            # The root page of a table this size is an interior page: scribble
            # over its cell pointers.
            f.seek((root - 1) * page_size + 8)
            f.write(b"\xff\x7f" * 40)
        t0 = time.time()
        stack.gw = Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
        stack.gw.start()
        wait_for(lambda: log_lines(stack, r"store: database damaged"), 15,
                 what="a log line about the damage")
        wait_for(lambda: [a for a in stack.alerts(t0) if a.get("rule") == "storage_damaged"
                          and a.get("severity") == "critical"], 15,
                 what="a critical storage_damaged alert")
        wait_for(lambda: _port_open(stack.http_port), 10, what="the console")
        status, body = http_call(stack, "POST", "/api/login",
                                 {"user": "viewer", "password": "view123"})
        self.assertEqual(status, 200, body)
        status, body = http_call(stack, "GET", "/api/patrol/verify", token=body["token"])
        self.assertEqual(status, 200, f"a verdict, not a server error: {status} {body}")
        self.assertFalse(body["intact"], body)
        self.assertIn("damaged", body.get("problem", ""), body)
        res = stack.ctl("patrol", "verify", check=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("damaged", res.stderr)

    def test_damage_found_by_the_periodic_check(self):
        # No simulator, and no meter_offline incidents that could still be coming in
        # (building 3's serial lines give up seconds after the TCP converters).
        stack = self.stack(gw_sets=("gateway.integrity_check_s=2", "rules.meter_offline.enabled=false"))
        stack.start(sim=False)
        for i in range(40):
            stack.ctl("patrol", "checkin", "--location", "lobby", "--text", f"round {i} " + "x" * 200)
        # Every check-in is in: the patrol table's pages no longer change;
        # push them into the file.
        time.sleep(8)
        con = sqlite3.connect(db_path(stack), timeout=10)
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'patrol'").fetchone()[0]
        con.execute("PRAGMA wal_checkpoint(FULL)")
        con.close()
        self.assertFalse(log_lines(stack, r"database damaged"))
        t0 = time.time()
        with open(db_path(stack), "r+b") as f:
            f.seek((root - 1) * page_size + 8)
            f.write(b"\xff\x7f" * 40)
        wait_for(lambda: log_lines(stack, r"store: database damaged \(integrity check\)"), 20,
                 what="the periodic check's log line")
        wait_for(lambda: [a for a in stack.alerts(t0) if a.get("rule") == "storage_damaged"], 10,
                 what="a storage_damaged alert")
        self.assertTrue(stack.gw.alive())


def _port_open(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _head_at_least(stack, seq):
    heads = stack.sub.json_on("/patrol/head")
    return heads[-1] if heads and heads[-1].get("seq", 0) >= seq else None


if __name__ == "__main__":
    unittest.main(verbosity=2)
