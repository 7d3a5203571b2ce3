"""notify_standins.py - loopback stand-ins for the places estate-gw sends
alerts to: one HTTP server playing the WeCom, DingTalk and Feishu group
robots (it checks each call's key or token, its JSON and DingTalk's
signature, and can play an outage or a rate limit), and an SMTP server
(Debian's python3-aiosmtpd) that keeps every message it accepts.
Also writes the gateway config that routes the demo site's incidents to
them."""
import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from harness import free_port

WECOM_KEY = "wecom-test-key-0001"
DINGTALK_TOKEN = "dingtalk-test-token-0002"
DINGTALK_SECRET = "SECdingtalk-test-secret-0003"
FEISHU_TOKEN = "feishu-test-token-0004"
SMTP_PASSWORD = "smtp-test-password-0005"
SECRETS = (WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET, FEISHU_TOKEN, SMTP_PASSWORD)


def dingtalk_sign(secret, timestamp_ms):
    text = f"{timestamp_ms}\n{secret}".encode()
    mac = hmac.new(secret.encode(), text, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class Robots:
    """One HTTP server answering as the three robots. calls: every call
    received, accepted or not, as dicts (t, robot, body, answer). problems:
    what a real robot would have refused (wrong key, bad JSON, bad
    signature) - a test asserts it stays empty."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.calls = []
        self.problems = []
        self.lock = threading.Lock()
        self.rate_limited_answers = 0  # the next N WeCom calls answer errcode 45009
        self.server = None
        self.thread = None

    # -- the server --------------------------------------------------
    def start(self):
        robots = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                code, answer = robots.handle(self.path, raw)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """An outage: the port refuses connections until start() again."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- the robots --------------------------------------------------
    def problem(self, text):
        with self.lock:
            self.problems.append(text)

    def handle(self, path, raw):
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            body = json.loads(raw)
        except ValueError:
            self.problem(f"{url.path}: body is not JSON: {raw[:200]!r}")
            return 400, {"errcode": 40000, "errmsg": "bad json"}
        if url.path == "/cgi-bin/webhook/send":
            robot, answer = "wecom", self.wecom(query, body)
        elif url.path == "/robot/send":
            robot, answer = "dingtalk", self.dingtalk(query, body)
        elif url.path.startswith("/open-apis/bot/v2/hook/"):
            robot, answer = "feishu", self.feishu(url.path.rsplit("/", 1)[1], body)
        else:
            self.problem(f"unknown path {url.path}")
            return 404, {"errcode": 404}
        with self.lock:
            self.calls.append({"t": time.time(), "robot": robot, "body": body, "answer": answer})
        return 200, answer

    def wecom(self, query, body):
        if query.get("key") != WECOM_KEY:
            self.problem(f"wecom: wrong key {query.get('key')!r}")
            return {"errcode": 93000, "errmsg": "invalid webhook url"}
        text = body.get("text") or {}
        if body.get("msgtype") != "text" or not isinstance(text.get("content"), str):
            self.problem(f"wecom: not a text message: {body}")
            return {"errcode": 40008, "errmsg": "invalid message type"}
        mentioned = text.get("mentioned_mobile_list", [])
        if not isinstance(mentioned, list) or not all(isinstance(m, str) for m in mentioned):
            self.problem(f"wecom: mentioned_mobile_list is not a list of strings: {body}")
        with self.lock:
            if self.rate_limited_answers > 0:
                self.rate_limited_answers -= 1
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
        return {"errcode": 0, "errmsg": "ok"}

    def dingtalk(self, query, body):
        if query.get("access_token") != DINGTALK_TOKEN:
            self.problem(f"dingtalk: wrong access_token {query.get('access_token')!r}")
            return {"errcode": 300001, "errmsg": "token is not exist"}
        try:
            ts = int(query.get("timestamp", ""))
        except ValueError:
            ts = 0
        if abs(ts - time.time() * 1000) > 3600 * 1000:
            self.problem(f"dingtalk: timestamp {query.get('timestamp')!r} is not now")
            return {"errcode": 310000, "errmsg": "invalid timestamp"}
        if query.get("sign") != dingtalk_sign(DINGTALK_SECRET, ts):
            self.problem(f"dingtalk: bad signature {query.get('sign')!r}")
            return {"errcode": 310000, "errmsg": "sign not match"}
        text = body.get("text") or {}
        at = body.get("at") or {}
        if body.get("msgtype") != "text" or not isinstance(text.get("content"), str) or \
                not isinstance(at.get("atMobiles", []), list):
            self.problem(f"dingtalk: not a text message: {body}")
            return {"errcode": 40035, "errmsg": "missing param"}
        return {"errcode": 0, "errmsg": "ok"}

    def feishu(self, token, body):
        if token != FEISHU_TOKEN:
            self.problem(f"feishu: wrong hook token {token!r}")
            return {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
        if body.get("msg_type") != "text" or not isinstance((body.get("content") or {}).get("text"), str):
            self.problem(f"feishu: not a text message: {body}")
            return {"code": 9499, "msg": "Bad Request"}
        return {"code": 0, "msg": "success"}

    # -- for the tests -----------------------------------------------
    def delivered(self, robot):
        """Texts the robot accepted, with their call: [(t, text, body)]."""
        out = []
        with self.lock:
            for c in self.calls:
                if c["robot"] != robot or c["answer"].get("errcode", c["answer"].get("code")) != 0:
                    continue
                b = c["body"]
                text = (b.get("text") or {}).get("content") or (b.get("content") or {}).get("text")
                out.append((c["t"], text, b))
        return out


class Mailbox:
    """An SMTP server on loopback that wants the gateway's login; messages: (t, mail_from, rcpt_tos, message)."""

    def __init__(self):
        self.port = free_port()
        self.messages = []
        self.lock = threading.Lock()
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with box.lock:
                    box.messages.append((time.time(), envelope.mail_from, list(envelope.rcpt_tos), msg))
                return "250 Message accepted for delivery"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = getattr(auth_data, "login", None) == b"gw" and \
                getattr(auth_data, "password", None) == SMTP_PASSWORD.encode()
            return AuthResult(success=ok)

        # Loopback only, so no TLS here: AUTH is allowed in the clear.
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticate, auth_required=True,
                                     auth_require_tls=False)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def snapshot(self):
        with self.lock:
            return list(self.messages)


def write_secret(directory, name, value, mode=0o600):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, mode)
    return path


def site_minutes_now(offset_min=480):
    """Minutes after midnight now at the demo site (Asia/Shanghai)."""
    return int((time.time() // 60 + offset_min) % 1440)


def hhmm(minutes):
    minutes %= 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def write_gw_config(directory, demo_conf, robots_port, smtp_port, retry_max_s=5, extra_routes="",
                    extra_notify="", timeout_ms=2000):
    """A gateway config: the demo site plus a notify section routing fire
    incidents to the WeCom and DingTalk stand-ins (the engineer on duty
    mentioned), vacant-unit water by e-mail in English, and fire incidents
    to Feishu with quiet hours around now (a critical one still goes)."""
    for name, value in (("wecom.key", WECOM_KEY), ("dingtalk.token", DINGTALK_TOKEN),
                        ("dingtalk.secret", DINGTALK_SECRET), ("feishu.token", FEISHU_TOKEN),
                        ("smtp.password", SMTP_PASSWORD)):
        write_secret(directory, name, value)
    now = site_minutes_now()
    base = f"http://127.0.0.1:{robots_port}"
    with open(demo_conf) as f:
        demo = f.read()
    text = demo + f"""
notify = {{
  console_url = "http://127.0.0.1:8080";
  retry_max_s = {retry_max_s};{extra_notify}
  channels = (
    {{ name = "wecom_duty"; type = "wecom"; url = "{base}/cgi-bin/webhook/send";
       key_file = "wecom.key"; timeout_ms = {timeout_ms}; }},
    {{ name = "dingtalk_duty"; type = "dingtalk"; url = "{base}/robot/send";
       key_file = "dingtalk.token"; sign_secret_file = "dingtalk.secret"; timeout_ms = {timeout_ms}; }},
    {{ name = "feishu_office"; type = "feishu"; url = "{base}/open-apis/bot/v2/hook";
       key_file = "feishu.token"; timeout_ms = {timeout_ms}; }},
    {{ name = "mail"; type = "smtp"; url = "smtp://127.0.0.1:{smtp_port}"; tls = false;
       from = "estate-gw@example.com"; username = "gw"; password_file = "smtp.password";
       timeout_ms = {timeout_ms}; }}
  );
  routes = (
    {{ channel = "wecom_duty"; categories = ["fire"]; severities = ["critical", "major"];
       to = ["13800000001"]; }},
    {{ channel = "dingtalk_duty"; rules = ["fire_alarm"]; to = ["13800000002"]; }},
    {{ channel = "mail"; rules = ["vacant_flow"]; buildings = ["1"]; to = ["duty@example.com"];
       language = "en"; cleared = false; }},
    {{ channel = "feishu_office"; categories = ["fire"];
       quiet_hours = "{hhmm(now - 60)}-{hhmm(now + 60)}"; }}{extra_routes}
  );
}};
"""
    path = os.path.join(directory, "estate-gw.conf")
    with open(path, "w") as f:
        f.write(text)
    return path
