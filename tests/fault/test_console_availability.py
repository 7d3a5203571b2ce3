"""The console stays usable under attack: clients trickling request headers
from several addresses (slowloris), a viewer holding many live event streams,
an account signing in over and over, and password guessing - at the user,
and with junk names meant to flush the failure counts - do not take the
console from a real user, who signs in and loads the alerts within 1 s. A
closed event stream gives its slot back at once; a request for another Host
is refused. 127.0.0.2, 127.0.0.3 ... are all loopback: each stands for a
different client address. One gateway (no broker, no simulator) for the
class; each test uses addresses of its own."""
import http.client
import json
import socket
import threading
import time
import unittest

import faultlib  # noqa: F401  (puts tests/integration on sys.path)
from test_http_api import PASSWORDS, start_console_stack


def call(port, method, path, body=None, token=None, source="127.0.0.1", timeout=5,
         headers=None, conn=None):
    """One request; (status, headers, parsed body). Raises OSError (and
    http.client's errors) when the server does not answer."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                          source_address=(source, 0))
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + token
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return resp.status, dict(resp.getheaders()), parsed
    finally:
        if own:
            conn.close()


def login(port, user, password=None, source="127.0.0.1", timeout=5, conn=None):
    return call(port, "POST", "/api/login",
                {"user": user, "password": password if password is not None else PASSWORDS[user]},
                source=source, timeout=timeout, conn=conn)


class ConsoleAvailabilityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = start_console_stack()
        cls.port = cls.stack.http_port

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def setUp(self):
        self.assertTrue(self.stack.gw.alive(), "estate-gw died")

    def tearDown(self):
        if hasattr(self, "_outcome") and any(e for _, e in getattr(self._outcome, "errors", []) if e):
            self.stack.dump_logs()

    # ---- helpers ----

    def user_gets_in(self, user="supervisor", source="127.0.0.1", within=1.0):
        """A real user signs in and loads the active alerts within `within` s;
        returns the failure text or None."""
        started = time.time()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=within,
                                          source_address=(source, 0))
        try:
            status, _, body = login(self.port, user, source=source, conn=conn)
            if status != 200:
                return f"sign-in answered {status} {body}"
            status, _, alerts = call(self.port, "GET", "/api/alerts?state=active",
                                     token=body["token"], conn=conn)
            if status != 200:
                return f"alerts answered {status}"
        except (OSError, http.client.HTTPException) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        elapsed = time.time() - started
        return None if elapsed <= within else f"took {elapsed:.2f} s"

    def open_stream(self, token, source):
        """Opens /api/events; (socket, status) - status None when the server
        closed the connection without answering."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                        source_address=(source, 0))
        try:
            sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {token}\r\n"
                          f"Accept: text/event-stream\r\n\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return sock, None
                head += chunk
            return sock, int(head.split(b" ")[1])
        except OSError:
            return sock, None

    # ---- tests ----

    def test_slowloris_from_several_addresses_does_not_lock_users_out(self):
        """8 addresses x 20 connections, each sending one header line every
        2 s and reconnecting when cut off, for 14 s."""
        stop = threading.Event()
        sources = [f"127.0.0.{n}" for n in range(20, 28)]
        held = []

        def open_slow(source):
            s = socket.socket()
            s.settimeout(2)
            s.bind((source, 0))
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"GET /api/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            return s

        def attacker():
            socks = []
            for source in sources:
                for _ in range(20):
                    try:
                        socks.append([source, open_slow(source)])
                    except OSError:
                        socks.append([source, None])
            held.append(sum(1 for _, s in socks if s))
            while not stop.wait(2.0):
                for entry in socks:
                    source, s = entry
                    try:
                        if s is None:
                            raise OSError("reconnect")
                        s.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        if s is not None:
                            s.close()
                        try:
                            entry[1] = open_slow(source)
                        except OSError:
                            entry[1] = None
            for _, s in socks:
                if s:
                    s.close()

        thread = threading.Thread(target=attacker, daemon=True)
        thread.start()
        try:
            time.sleep(3)
            self.assertTrue(held and held[0] >= 64, f"the attack held only {held} connections")
            failures = []
            deadline = time.time() + 12
            while time.time() < deadline:
                problem = self.user_gets_in()
                if problem:
                    failures.append(problem)
                time.sleep(1.5)
            self.assertEqual(failures, [], "a real user could not use the console")
        finally:
            stop.set()
            thread.join(10)

    def test_event_streams_of_a_viewer_do_not_lock_others_out(self):
        tokens = [login(self.port, "viewer", source="127.0.0.30")[2]["token"] for _ in range(4)]
        streams = []
        try:
            for i in range(64):
                source = f"127.0.0.{31 + i % 4}"
                try:
                    streams.append(self.open_stream(tokens[i % 4], source)[0])
                except OSError:
                    pass
            self.assertIsNone(self.user_gets_in("engineer", source="127.0.0.36"))
            self.assertIsNone(self.user_gets_in("supervisor", source="127.0.0.1"))
        finally:
            for s in streams:
                s.close()

    def test_closed_event_stream_frees_its_slot_at_once(self):
        token = login(self.port, "viewer", source="127.0.0.40")[2]["token"]
        opened, refused = [], None
        try:
            for _ in range(30):
                sock, status = self.open_stream(token, "127.0.0.41")
                if status == 200:
                    opened.append(sock)
                    continue
                sock.close()
                refused = status
                break
            self.assertTrue(opened, "no stream opened at all")
            self.assertTrue(refused is None or refused == 429 or len(opened) < 30,
                            "streams were never limited")
            opened.pop().close()
            deadline = time.time() + 1.0
            status = None
            while time.time() < deadline and status != 200:
                sock, status = self.open_stream(token, "127.0.0.41")
                if status == 200:
                    opened.append(sock)
                else:
                    sock.close()
                    time.sleep(0.1)
            self.assertEqual(status, 200, "the closed stream's slot was not freed within 1 s")
        finally:
            for s in opened:
                s.close()

    def test_mass_logins_do_not_evict_the_supervisors_session(self):
        status, _, body = login(self.port, "supervisor", source="127.0.0.50")
        self.assertEqual(status, 200, body)
        token = body["token"]
        count = [0]
        lock = threading.Lock()

        def flood(source):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                              source_address=(source, 0))
            while True:
                with lock:
                    if count[0] >= 1100:
                        break
                    count[0] += 1
                try:
                    status, _, _ = login(self.port, "viewer", source=source, conn=conn)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                                      source_address=(source, 0))
            conn.close()

        threads = [threading.Thread(target=flood, args=(f"127.0.0.{51 + n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        status, _, me = call(self.port, "GET", "/api/me", token=token, source="127.0.0.50")
        self.assertEqual(status, 200, f"the supervisor was signed out: {me}")

    def test_wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere(self):
        status = None
        for _ in range(10):
            status = login(self.port, "frontdesk", "wrong", source="127.0.0.60")[0]
            if status == 429:
                break
        self.assertEqual(status, 429, "guessing was never throttled")
        status, _, body = login(self.port, "frontdesk", source="127.0.0.61")
        self.assertEqual(status, 200, f"the real user was locked out from their own address: {body}")

    def test_junk_names_do_not_flush_a_victims_failure_count(self):
        guesser = "127.0.0.70"
        for _ in range(5):
            self.assertEqual(login(self.port, "engineer", "wrong", source=guesser)[0], 401)
        time.sleep(1.2)  # the first lockout (1 s) is over; the count stays
        names = iter(range(400))
        lock = threading.Lock()

        def junk(n):
            source = f"127.0.1.{n}"
            for _ in range(10):
                with lock:
                    i = next(names, None)
                if i is None:
                    return
                try:
                    login(self.port, f"junk{i}", "wrong", source=source)
                except (OSError, http.client.HTTPException):
                    pass

        threads = [threading.Thread(target=junk, args=(n,)) for n in range(1, 41)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        status, _, body = login(self.port, "engineer", "wrong", source=guesser)
        self.assertIn(status, (401, 429), body)
        status, _, body = login(self.port, "engineer", "wrong", source=guesser)
        self.assertEqual(status, 429, "the guesser's count was flushed: guessing resumed freely")

    def test_wrong_host_is_refused(self):
        for path in ("/", "/api/me"):
            status, _, _ = call(self.port, "GET", path, headers={"Host": "evil.example"},
                                source="127.0.0.80")
            self.assertIn(status, (400, 421), path)
        status, _, _ = call(self.port, "GET", "/", headers={"Host": f"127.0.0.1:{self.port}"},
                            source="127.0.0.80")
        self.assertEqual(status, 200)
        status, _, _ = call(self.port, "GET", "/", headers={"Host": f"localhost:{self.port}"},
                            source="127.0.0.80")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
