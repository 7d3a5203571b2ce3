"""test_http_api.py - the console's JSON API against a running estate-gw
(python3 standard library only besides the shared harness): every route
refuses anonymous calls (401) and wrong roles (403), malformed JSON (400)
and oversize bodies (413); cross-site cookie requests are refused; a refused
call never changes state; a work order goes open -> verified through the API
with each step in the patrol log under the signed-in user; live events
arrive over SSE; failed sign-ins are throttled with 429 + Retry-After.

The gateway runs without broker or simulator (its buses point at closed
ports): the API does not need them."""
import json
import os
import shutil
import socket
import time
import unittest
import urllib.error
import urllib.request

import harness

DEMO_USERS = os.path.join(harness.ROOT, "etc", "demo", "users.conf")
PASSWORDS = {"frontdesk": "front123", "engineer": "eng123", "supervisor": "super123",
             "viewer": "view123"}

# Every API route but login, with a body that would be valid for it.
PROTECTED = [
    ("POST", "/api/logout", {}),
    ("GET", "/api/me", None),
    ("GET", "/api/alerts?state=active", None),
    ("POST", "/api/alerts/1/ack", {}),
    ("GET", "/api/engineers", None),
    ("GET", "/api/workorders?state=active", None),
    ("POST", "/api/workorders", {"category": "water", "location": "x", "description": "y"}),
    ("GET", "/api/workorders/1", None),
    ("POST", "/api/workorders/1/dispatch", {"assignee": "engineer"}),
    ("GET", "/api/meters", None),
    ("GET", "/api/meters/W-1-101/history", None),
    ("POST", "/api/meters/W-1-101/valve", {"action": "close"}),
    ("GET", "/api/units", None),
    ("POST", "/api/units/1-101/occupancy", {"occupancy": "vacant"}),
    ("GET", "/api/patrol?since=0", None),
    ("GET", "/api/patrol/verify", None),
    ("POST", "/api/patrol/checkin", {"location": "lobby", "text": "all quiet"}),
    ("GET", "/api/handover", None),
    ("POST", "/api/handover", {"to": "night shift"}),
    ("GET", "/api/events", None),
]


class Client:
    """A tiny HTTP client: Bearer or cookie sessions, raw bodies."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, token=None, cookie=None, headers=None, raw=None,
             timeout=15):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if cookie:
            req.add_header("Cookie", "estate_session=" + cookie)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), _json(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), _json(e.read())

    def login(self, user, password=None):
        status, headers, body = self.call("POST", "/api/login",
                                          {"user": user, "password": password or PASSWORDS[user]})
        assert status == 200, (status, body)
        return body["token"]


def _json(data):
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data


def start_console_stack():
    """A gateway alone (no broker, no simulator) with the demo users, its
    console listening."""
    stack = harness.Stack()
    users = os.path.join(stack.workdir, "users.conf")
    shutil.copy(DEMO_USERS, users)
    os.chmod(users, 0o600)
    stack.gw_argv += ["--set", f"http.users_file={users}"]
    stack.gw = harness.Process(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
    try:
        stack.start(broker=False, sim=False, gw=True)
        harness.wait_port(stack.http_port, 20)
    except Exception:
        stack.dump_logs()
        stack.close()
        raise
    return stack


class HttpApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = start_console_stack()
        cls.http = Client(f"http://127.0.0.1:{cls.stack.http_port}")
        cls.tokens = {user: cls.http.login(user) for user in PASSWORDS}

    @classmethod
    def tearDownClass(cls):
        if cls.stack.gw.alive() is False:
            cls.stack.dump_logs()
        cls.stack.close()

    def setUp(self):
        self.assertTrue(self.stack.gw.alive(), "estate-gw died")

    # ---- helpers ----

    def as_(self, user, method, path, body=None, **kw):
        return self.http.call(method, path, body, token=self.tokens[user], **kw)

    def create_order(self, description="tap drips"):
        status, _, body = self.as_("frontdesk", "POST", "/api/workorders",
                                   {"category": "water", "unit": "1-101", "location": "kitchen",
                                    "description": description})
        self.assertEqual(status, 200, body)
        self.assertTrue(body["ok"])
        wo = body.get("workorder")
        return wo["id"] if isinstance(wo, dict) else (body.get("id") or wo)

    def order(self, wo_id):
        status, _, body = self.as_("viewer", "GET", f"/api/workorders/{wo_id}")
        self.assertEqual(status, 200, body)
        return body["workorder"]

    def patrol_by(self, user):
        status, _, body = self.as_("viewer", "GET", "/api/patrol?since=0&limit=2000")
        self.assertEqual(status, 200, body)
        return [e for e in body["entries"] if e["author"] == user]

    def units(self):
        return {u["id"]: u["occupancy"] for u in self.as_("viewer", "GET", "/api/units")[2]["units"]}

    # ---- tests ----

    def test_anonymous_refused(self):
        for method, path, body in PROTECTED:
            with self.subTest(route=f"{method} {path}"):
                status, _, reply = self.http.call(method, path, body)
                self.assertEqual(status, 401, reply)
                status, _, reply = self.http.call(method, path, body, token="ab" * 32)
                self.assertEqual(status, 401, reply)
                status, _, reply = self.http.call(method, path, body, cookie="not-a-token",
                                                  headers={"X-Requested-With": "estate-console"})
                self.assertEqual(status, 401, reply)
        # Unknown routes do not leak either.
        self.assertEqual(self.http.call("GET", "/api/nothing")[0], 401)

    def test_wrong_credentials(self):
        status, _, body = self.http.call("POST", "/api/login",
                                         {"user": "nobody", "password": "x"})
        self.assertEqual(status, 401)
        self.assertNotIn("token", body)
        status, _, body = self.http.call("POST", "/api/login", {"user": "frontdesk"})
        self.assertEqual(status, 400)

    def test_login_and_me(self):
        status, headers, body = self.http.call("POST", "/api/login",
                                               {"user": "engineer", "password": "eng123"})
        self.assertEqual(status, 200)
        self.assertEqual(body["role"], "engineer")
        self.assertEqual(len(body["token"]), 64)
        cookie = headers.get("Set-Cookie", "")
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        status, _, me = self.http.call("GET", "/api/me", token=body["token"])
        self.assertEqual(status, 200)
        self.assertEqual(me["user"], "engineer")
        self.assertTrue(me["permissions"]["workorder"]["arrive"])
        self.assertFalse(me["permissions"]["workorder"]["dispatch"])
        # The cookie works as well as the bearer token for reads.
        status, _, me = self.http.call("GET", "/api/me", cookie=body["token"])
        self.assertEqual(status, 200)

    def test_logout_ends_session(self):
        token = self.http.login("viewer")
        self.assertEqual(self.http.call("GET", "/api/me", token=token)[0], 200)
        self.assertEqual(self.http.call("POST", "/api/logout", {}, token=token)[0], 200)
        self.assertEqual(self.http.call("GET", "/api/me", token=token)[0], 401)

    def test_wrong_roles_refused_without_change(self):
        wo_id = self.create_order("wrong-role check")
        before_order, before_units = self.order(wo_id), self.units()
        refused = [
            ("viewer", "POST", "/api/workorders", {"category": "water", "location": "x",
                                                  "description": "y"}),
            ("viewer", "POST", f"/api/workorders/{wo_id}/dispatch", {"assignee": "engineer"}),
            ("viewer", "POST", f"/api/workorders/{wo_id}/cancel", {"note": "no"}),
            ("viewer", "POST", f"/api/workorders/{wo_id}/note", {"note": "hi"}),
            ("viewer", "POST", "/api/units/1-101/occupancy", {"occupancy": "vacant"}),
            ("viewer", "POST", "/api/meters/W-1-101/valve", {"action": "close"}),
            ("viewer", "POST", "/api/patrol/checkin", {"location": "lobby", "text": "x"}),
            ("viewer", "POST", "/api/handover", {"to": "night"}),
            ("engineer", "POST", f"/api/workorders/{wo_id}/dispatch", {"assignee": "engineer"}),
            ("engineer", "POST", f"/api/workorders/{wo_id}/verify", {"verifier": "li"}),
            ("engineer", "POST", "/api/units/1-101/occupancy", {"occupancy": "vacant"}),
            ("frontdesk", "POST", f"/api/workorders/{wo_id}/arrive", {}),
            ("frontdesk", "POST", f"/api/workorders/{wo_id}/verify", {"verifier": "fd"}),
            ("frontdesk", "POST", "/api/meters/W-1-101/valve", {"action": "close"}),
        ]
        for user, method, path, body in refused:
            with self.subTest(user=user, route=path):
                status, _, reply = self.as_(user, method, path, body)
                self.assertEqual(status, 403, reply)
        self.assertEqual(self.order(wo_id), before_order)
        self.assertEqual(self.units(), before_units)
        self.assertEqual(self.patrol_by("viewer"), [])

    def test_malformed_json_refused_without_change(self):
        wo_id = self.create_order("malformed check")
        before = self.order(wo_id)
        for raw in (b"{bad", b"[1,2]", b"\"text\"", b"{\"assignee\": \"li\"", b"\xff\xfe"):
            for path in (f"/api/workorders/{wo_id}/dispatch", "/api/workorders",
                         "/api/units/1-101/occupancy", "/api/patrol/checkin", "/api/handover"):
                with self.subTest(raw=raw, path=path):
                    status, _, reply = self.as_("supervisor", "POST", path, raw=raw)
                    self.assertEqual(status, 400, reply)
        status, _, _ = self.http.call("POST", "/api/login", raw=b"{nope")
        self.assertEqual(status, 400)
        self.assertEqual(self.order(wo_id), before)

    def test_oversize_bodies_refused(self):
        big = json.dumps({"note": "x" * (70 * 1024)}).encode()
        wo_id = self.create_order("oversize check")
        before = self.order(wo_id)
        for path in (f"/api/workorders/{wo_id}/note", "/api/workorders", "/api/handover",
                     "/api/patrol/checkin"):
            with self.subTest(path=path):
                status, _, reply = self.as_("supervisor", "POST", path, raw=big)
                self.assertEqual(status, 413, reply)
        self.assertEqual(self.http.call("POST", "/api/login", raw=big)[0], 413)
        self.assertEqual(self.order(wo_id), before)

    def test_cross_site_cookie_requests_refused(self):
        token = self.http.login("frontdesk")
        wo_id = self.create_order("csrf check")
        before = self.order(wo_id)
        path = f"/api/workorders/{wo_id}/note"
        # Cookie without the console's header, or from a foreign origin: 403.
        self.assertEqual(self.http.call("POST", path, {"note": "a"}, cookie=token)[0], 403)
        self.assertEqual(self.http.call("POST", path, {"note": "a"}, cookie=token,
                                        headers={"X-Requested-With": "estate-console",
                                                 "Origin": "http://evil.example"})[0], 403)
        self.assertEqual(self.order(wo_id), before)
        # The console's own request passes; so does a Bearer client.
        host = f"127.0.0.1:{self.stack.http_port}"
        status, _, body = self.http.call("POST", path, {"note": "from the console"}, cookie=token,
                                         headers={"X-Requested-With": "estate-console",
                                                  "Origin": f"http://{host}"})
        self.assertEqual(status, 200, body)
        status, _, body = self.http.call("POST", path, {"note": "from a script"}, token=token)
        self.assertEqual(status, 200, body)
        # A foreign page cannot sign a browser in either.
        status, _, _ = self.http.call("POST", "/api/login",
                                      {"user": "viewer", "password": "view123"},
                                      headers={"Origin": "http://evil.example"})
        self.assertEqual(status, 403)

    def test_routes_and_methods(self):
        self.assertEqual(self.as_("viewer", "GET", "/api/nothing")[0], 404)
        self.assertEqual(self.as_("viewer", "GET", "/api/workorders/abc")[0], 404)
        self.assertEqual(self.as_("viewer", "GET", "/api/meters/NOPE/history")[0], 404)
        self.assertEqual(self.as_("supervisor", "POST", "/api/workorders/1/explode", {})[0], 404)
        self.assertEqual(self.as_("viewer", "DELETE", "/api/alerts")[0], 405)
        self.assertEqual(self.as_("viewer", "POST", "/api/meters", {})[0], 405)
        self.assertEqual(self.http.call("GET", "/api/login")[0], 401)
        self.assertEqual(self.as_("viewer", "GET", "/api/login")[0], 405)
        self.assertEqual(self.as_("viewer", "GET", "/api/alerts?state=bogus")[0], 400)
        self.assertEqual(self.as_("viewer", "GET", "/api/workorders?state=bogus")[0], 400)

    def test_reads(self):
        status, _, body = self.as_("viewer", "GET", "/api/meters")
        self.assertEqual(status, 200)
        ids = {m["id"] for m in body["meters"]}
        self.assertIn("W-1-101", ids)
        self.assertTrue(all("status" in m for m in body["meters"]))
        status, _, body = self.as_("viewer", "GET", "/api/meters/W-1-101/history?since=0")
        self.assertEqual(status, 200)
        self.assertIsInstance(body["points"], list)
        status, _, body = self.as_("viewer", "GET", "/api/alerts?state=active")
        self.assertEqual(status, 200)
        self.assertIsInstance(body["alerts"], list)
        status, _, body = self.as_("viewer", "GET", "/api/handover")
        self.assertEqual(status, 200)
        self.assertIn("counts", body["handover"])
        status, _, body = self.as_("viewer", "GET", "/api/patrol/verify")
        self.assertEqual(status, 200)
        self.assertTrue(body["intact"])

    def test_static_console(self):
        status, headers, body = self.http.call("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers["Content-Type"])
        self.assertIn("default-src 'self'", headers["Content-Security-Policy"])
        self.assertEqual(self.http.call("GET", "/app.js")[0], 200)
        self.assertEqual(self.http.call("GET", "/style.css")[0], 200)
        for path in ("/../CMakeLists.txt", "/%2e%2e/CMakeLists.txt", "/.hidden", "/nope.html"):
            with self.subTest(path=path):
                self.assertEqual(raw_get_status(self.stack.http_port, path), 404)
        self.assertEqual(self.http.call("POST", "/", {})[0], 405)

    def test_workorder_lifecycle_with_patrol_authors(self):
        wo_id = self.create_order("lifecycle")
        steps = [("frontdesk", "dispatch", {"assignee": "engineer", "note": "go"}, "dispatched"),
                 ("engineer", "arrive", {"note": "on site"}, "on_site"),
                 ("engineer", "complete", {"note": "washer replaced"}, "completed"),
                 ("supervisor", "verify", {"verifier": "supervisor", "note": "called back"},
                  "verified")]
        for user, action, body, state in steps:
            status, _, reply = self.as_(user, "POST", f"/api/workorders/{wo_id}/{action}", body)
            self.assertEqual(status, 200, reply)
            self.assertEqual(self.order(wo_id)["state"], state)
        history = self.order(wo_id)["history"]
        self.assertEqual([h["who"] for h in history[-4:]],
                         ["frontdesk", "engineer", "engineer", "supervisor"])
        for user in ("frontdesk", "engineer", "supervisor"):
            self.assertTrue(any(e.get("workorder") == wo_id for e in self.patrol_by(user)), user)
        # The core refuses a transition from a closed state: 409, nothing changes.
        before = self.order(wo_id)
        status, _, reply = self.as_("engineer", "POST", f"/api/workorders/{wo_id}/arrive", {})
        self.assertEqual(status, 409, reply)
        self.assertFalse(reply["ok"])
        self.assertIn("error", reply)
        self.assertEqual(self.order(wo_id), before)

    def test_live_events(self):
        sock, head = self.open_events()
        try:
            self.assertIn(b"200", head.split(b"\r\n")[0])
            self.assertIn(b"text/event-stream", head)
            wo_id = self.create_order("live event")
            seen = read_until(sock, head, b'"id":%d' % wo_id)
            self.assertIn(b"event: workorder", seen)
            self.assertIn(b'"id":%d' % wo_id, seen)
        finally:
            sock.close()

    def test_live_events_resume_from_last_event_id(self):
        """A stream asking for Last-Event-ID 0 gets the events still in the
        ring, so a client that reconnects sees what happened meanwhile."""
        wo_id = self.create_order("before the stream")
        sock, head = self.open_events("Last-Event-ID: 0\r\n")
        try:
            self.assertIn(b"200", head.split(b"\r\n")[0])
            seen = read_until(sock, head, b'"id":%d' % wo_id)
            self.assertIn(b"retry: 3000", seen)
            self.assertIn(b"id: 1\n", seen)
            self.assertIn(b"event: workorder", seen)
            self.assertIn(b'"id":%d' % wo_id, seen)
        finally:
            sock.close()

    def test_headers_every_answer_carries(self):
        """JSON answers, errors, static files and the event stream all carry
        the same protective headers, each with its own type and caching."""
        answers = {
            "json": self.as_("viewer", "GET", "/api/me"),
            "error": self.http.call("GET", "/api/me"),
            "not found": self.as_("viewer", "GET", "/api/nope"),
        }
        for name, (status, headers, _) in answers.items():
            with self.subTest(answer=name):
                self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
                self.assertEqual(headers["X-Frame-Options"], "DENY")
                self.assertEqual(headers["Referrer-Policy"], "no-referrer")
                self.assertEqual(headers["Content-Type"], "application/json; charset=utf-8")
                self.assertEqual(headers["Cache-Control"], "no-store")
        self.assertEqual(answers["error"][0], 401)
        self.assertEqual(answers["not found"][0], 404)
        status, headers, _ = self.http.call("GET", "/style.css")
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(headers["X-Frame-Options"], "DENY")
        self.assertEqual(headers["Content-Type"], "text/css; charset=utf-8")
        self.assertEqual(headers["Cache-Control"], "no-cache")
        sock, head = self.open_events()
        sock.close()
        lines = head.decode().lower().split("\r\n")
        for line in ("content-type: text/event-stream; charset=utf-8", "cache-control: no-store",
                     "x-accel-buffering: no", "x-content-type-options: nosniff",
                     "x-frame-options: deny", "referrer-policy: no-referrer"):
            self.assertIn(line, lines)

    def test_session_fields(self):
        """The sign-in answer and /api/me describe the same session."""
        status, headers, login = self.http.call("POST", "/api/login",
                                                {"user": "frontdesk", "password": "front123"})
        self.assertEqual(status, 200, login)
        self.assertEqual(list(login), ["token", "user", "role", "expires", "language"])
        self.assertEqual(headers["Set-Cookie"],
                         f"estate_session={login['token']}; Path=/; HttpOnly; SameSite=Strict; "
                         f"Max-Age={headers['Set-Cookie'].rsplit('=', 1)[1]}")
        self.assertGreater(int(headers["Set-Cookie"].rsplit("=", 1)[1]), 0)
        status, _, me = self.http.call("GET", "/api/me", token=login["token"])
        self.assertEqual(status, 200, me)
        self.assertEqual(list(me)[:4], ["user", "role", "expires", "language"])
        for field in ("user", "role", "expires", "language"):
            self.assertEqual(me[field], login[field], field)
        self.assertNotIn("token", me)
        for field in ("site", "gateway", "version", "arrive_within_s", "resolve_within_s", "now",
                      "permissions"):
            self.assertIn(field, me)
        status, headers, _ = self.http.call("POST", "/api/logout", {}, token=login["token"])
        self.assertEqual(status, 200)
        self.assertEqual(headers["Set-Cookie"],
                         "estate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")

    def open_events(self, extra_headers=""):
        """Opens /api/events as the viewer: the socket and the response head."""
        sock = socket.create_connection(("127.0.0.1", self.stack.http_port), timeout=10)
        sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {self.tokens['viewer']}\r\n"
                      f"Accept: text/event-stream\r\n{extra_headers}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        return sock, head


class LoginThrottleTest(unittest.TestCase):
    """Its own gateway: the failed logins it makes stay counted against the
    user and the address, and no other test's failures count here."""

    def setUp(self):
        self.stack = start_console_stack()
        self.addCleanup(self.stack.close)
        self.http = Client(f"http://127.0.0.1:{self.stack.http_port}")

    def test_wrong_passwords_lock_that_user_out_for_a_while(self):
        for _ in range(5):
            status, _, _ = self.http.call("POST", "/api/login",
                                          {"user": "viewer", "password": "wrong"})
            self.assertEqual(status, 401)
        started = time.time()
        status, headers, body = self.http.call("POST", "/api/login",
                                               {"user": "viewer", "password": "view123"})
        self.assertLess(time.time() - started, 1.0, "a throttled login must not block")
        self.assertEqual(status, 429, body)
        self.assertGreaterEqual(int(headers["Retry-After"]), 1)
        # Other users are not locked out by someone guessing at "viewer".
        self.assertEqual(self.http.call("POST", "/api/login",
                                        {"user": "engineer", "password": "eng123"})[0], 200)
        # After the window the right password works again.
        time.sleep(int(headers["Retry-After"]) + 0.2)
        self.assertEqual(self.http.call("POST", "/api/login",
                                        {"user": "viewer", "password": "view123"})[0], 200)


def read_until(sock, seen, needle, seconds=10):
    """Reads from sock onto seen until needle arrives, the peer closes or
    seconds pass; returns all seen."""
    deadline = time.time() + seconds
    while time.time() < deadline and needle not in seen:
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        seen += chunk
    return seen


def raw_get_status(port, path):
    """GET without client-side path normalisation."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


if __name__ == "__main__":
    unittest.main()
