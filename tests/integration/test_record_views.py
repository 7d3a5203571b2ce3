"""test_record_views.py - one incident, every form the gateway shows it in,
the same record: the running daemon (mosquitto + estate-sim + estate-gw,
demo site, scripted scenario off) gets a fire alarm on FP-1 zone 3 and
water flowing in the vacant unit 1-102 from the simulator's control port,
and the test reads each incident as

  P/alerts                      (transition form: "state" = "raised")
  P/alerts/active/<id>          (retained, stored form: "state" = "active")
  GET /api/alerts?state=active  (stored form)
  GET /api/events "alert" event (the console's live event, mirrors P/alerts)
  estate-ctl incidents --json   (stored form)

and checks that every form has the same keys with the same values, the
only exception being "state", which views.h documents as the transition in
the transition forms and the incident's state in the stored ones. It also
checks what views.h promises of every form: the zone counted from 1, the
meter named by its id (also in "detail"), no key twice in one object. Then
the fire alarm is reset and its "cleared" transition is compared with
`estate-ctl incidents --all --json` the same way, and its retained
P/alerts/active/<id> must become empty."""
import http.client
import json
import os
import shutil
import threading
import time
import unittest
import urllib.request

import harness

DEMO_USERS = os.path.join(harness.ROOT, "etc", "demo", "users.conf")
VIEWER = ("viewer", "view123")
# vacant_flow stays open long after the test stops the water (no more updates).
SETS = ["rules.vacant_flow.window_s=10", "rules.vacant_flow.clear_s=600"]
TRANSITION_STATES = {"raised", "updated", "cleared"}
STORED_STATES = {"active", "cleared"}


class Record(dict):
    """A JSON object that remembers the keys it (or an object inside it)
    held twice; a plain json.loads would silently keep the last one."""

    def __init__(self, pairs):
        super().__init__(pairs)
        keys = [k for k, _ in pairs]
        self.duplicates = sorted({k for k in keys if keys.count(k) > 1})
        for k, v in pairs:
            for inner in (v if isinstance(v, list) else [v]):
                if isinstance(inner, Record):
                    self.duplicates += [f"{k}.{d}" for d in inner.duplicates]


def strict_json(text):
    return json.loads(text, object_pairs_hook=Record)


class EventStream:
    """The console's Server-Sent Events, read on a thread: (name, data)."""

    def __init__(self, port, token):
        self.events = []
        self.lock = threading.Lock()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", "/api/events", headers={"Authorization": "Bearer " + token,
                                                         "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise AssertionError(f"GET /api/events: {self.response.status}")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        name, data = None, []
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if name is not None and data:
                        with self.lock:
                            self.events.append((name, "\n".join(data)))
                    name, data = None, []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        except Exception:  # noqa: BLE001 - close() from the test's thread ends the read
            return

    def data_of(self, name):
        with self.lock:
            return [data for n, data in self.events if n == name]

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except (OSError, AttributeError):
            pass
        self.conn.close()


def differences(reference, form):
    """What differs between two forms of one incident, "state" aside."""
    out = []
    missing = sorted(set(reference) - set(form))
    extra = sorted(set(form) - set(reference))
    if missing:
        out.append(f"missing {missing}")
    if extra:
        out.append(f"extra {extra}")
    for key in sorted(set(reference) & set(form)):
        if key != "state" and reference[key] != form[key]:
            out.append(f"{key}: {form[key]!r} != {reference[key]!r}")
    return out


class RecordViewsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = harness.Stack(gw_sets=SETS)
        users = os.path.join(cls.stack.workdir, "users.conf")
        shutil.copy(DEMO_USERS, users)
        os.chmod(users, 0o600)
        cls.stack.gw_argv += ["--set", f"http.users_file={users}"]
        cls.stack.gw = harness.Process(cls.stack.gw_argv, os.path.join(cls.stack.workdir, "gw.log"))
        cls.events = None
        try:
            cls.stack.start()
            harness.wait_port(cls.stack.http_port, 20)
            cls.token = cls.login()
            cls.events = EventStream(cls.stack.http_port, cls.token)
            harness.wait_for(lambda: cls.stack.sub.json_on("/panels/FP-1/state"), 20,
                             what="the fire panel's state on MQTT")
            harness.wait_for(lambda: any(r["meter"] == "W-1-102" for r in cls.stack.readings()),
                             20, what="a reading of W-1-102")
            cls.stack.control.call(cmd="event", device="FP-1", event="zone", zone=3,
                                   state="alarm")
            cls.stack.control.call(cmd="event", device="W-1-102", event="flow", flow_m3h=0.6)
        except Exception:
            cls.stack.dump_logs()
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.events is not None:
            cls.events.close()
        if not cls.stack.gw.alive():
            cls.stack.dump_logs()
        cls.stack.close()

    @classmethod
    def login(cls):
        req = urllib.request.Request(
            f"http://127.0.0.1:{cls.stack.http_port}/api/login", method="POST",
            data=json.dumps({"user": VIEWER[0], "password": VIEWER[1]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.loads(resp.read())["token"]

    # ---- each form of the incidents ----

    def mqtt(self, suffix):
        """Every payload on P/<suffix>, oldest first (strictly parsed; an
        empty payload as None)."""
        out = []
        for _, topic, payload, _ in self.stack.sub.snapshot():
            if topic == f"{self.stack.prefix}/{suffix}":
                out.append(strict_json(payload.decode("utf-8")) if payload else None)
        return out

    def transitions(self, incident_id):
        return [a for a in self.mqtt("alerts") if a.get("id") == incident_id]

    def retained(self, incident_id):
        forms = self.mqtt(f"alerts/active/{incident_id}")
        return forms[-1] if forms else None

    def rest(self, incident_id):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.stack.http_port}/api/alerts?state=active",
            headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=15) as resp:
            body = strict_json(resp.read().decode("utf-8"))
        return next((a for a in body["alerts"] if a.get("id") == incident_id), None)

    def live(self, incident_id):
        forms = [strict_json(d) for d in self.events.data_of("alert")]
        forms = [a for a in forms if a.get("id") == incident_id]
        return forms[-1] if forms else None

    def live_cleared(self, incident_id):
        forms = [strict_json(d) for d in self.events.data_of("alert")]
        return [a for a in forms if a.get("id") == incident_id and a.get("state") == "cleared"]

    def ctl(self, incident_id, *flags):
        res = self.stack.ctl("incidents", "--json", *flags)
        rows = strict_json(res.stdout)
        return next((r for r in rows if r.get("id") == incident_id), None)

    def raised(self, match, what):
        """The first "raised" P/alerts message that match() accepts."""
        found = []

        def seen():
            found[:] = [a for a in self.mqtt("alerts")
                        if a.get("state") == "raised" and match(a)]
            return found
        harness.wait_for(seen, 60, what=what)
        return found[0]

    def forms(self, incident_id):
        transitions = self.transitions(incident_id)
        return {
            "P/alerts": transitions[-1] if transitions else None,
            f"P/alerts/active/{incident_id}": self.retained(incident_id),
            "GET /api/alerts": self.rest(incident_id),
            "SSE alert": self.live(incident_id),
            "estate-ctl incidents --json": self.ctl(incident_id),
        }

    def check_same_record(self, incident_id, transition_forms, stored_forms):
        """Collects the forms until they agree (a later update may be on its
        way to one of them) for up to 20 s, then asserts on the last try."""
        problems = ["not compared yet"]
        forms = {}
        deadline = time.time() + 20
        while problems and time.time() < deadline:
            forms = self.forms(incident_id)
            problems = []
            reference = forms["GET /api/alerts"]
            for name, form in forms.items():
                if form is None:
                    problems.append(f"{name}: no form of incident {incident_id}")
                    continue
                if form.duplicates:
                    problems.append(f"{name}: keys twice in one object: {form.duplicates}")
                if reference is not None:
                    problems += [f"{name}: {d}" for d in differences(reference, form)]
            if problems:
                time.sleep(1)
        for name in transition_forms:
            if forms.get(name) is not None and forms[name].get("state") not in TRANSITION_STATES:
                problems.append(f"{name}: state {forms[name].get('state')!r} is no transition")
        for name in stored_forms:
            if forms.get(name) is not None and forms[name].get("state") != "active":
                problems.append(f"{name}: state {forms[name].get('state')!r}, not 'active'")
        if problems:
            self.fail("forms of incident %d differ:\n  %s\nthe forms:\n%s" % (
                incident_id, "\n  ".join(problems),
                json.dumps(forms, indent=1, ensure_ascii=False)))
        return forms["GET /api/alerts"]

    # ---- the tests ----

    TRANSITION_FORMS = ("P/alerts", "SSE alert")

    def stored_form_names(self, incident_id):
        return (f"P/alerts/active/{incident_id}", "GET /api/alerts", "estate-ctl incidents --json")

    def test_fire_alarm_same_in_every_form(self):
        alert = self.raised(lambda a: a.get("rule") == "fire_alarm" and a.get("panel") == "FP-1",
                            "fire_alarm on P/alerts")
        incident_id = alert["id"]
        record = self.check_same_record(incident_id, self.TRANSITION_FORMS,
                                        self.stored_form_names(incident_id))
        self.assertEqual(record["zone"], 3, "zones count from 1, as the panel shows them")
        self.assertEqual(record["panel"], "FP-1")
        self.assertEqual(record["subject_type"], "zone")
        self.assertEqual(record["rule"], "fire_alarm")
        self.assertNotIn("meter", record)
        for key in ("id", "rule", "severity", "state", "location", "ts", "since", "text",
                    "detail"):
            self.assertIn(key, record)
        self.assertIsInstance(record["detail"], dict)

        # Reset: the "cleared" transition against the stored cleared row.
        self.stack.control.call(cmd="event", device="FP-1", event="zone", zone=3, state="normal")
        harness.wait_for(lambda: any(a.get("state") == "cleared"
                                     for a in self.transitions(incident_id)),
                         60, what="the fire alarm's cleared transition")
        harness.wait_for(lambda: self.retained(incident_id) is None, 20,
                         what="an empty retained P/alerts/active/<id>")
        cleared = [a for a in self.transitions(incident_id) if a.get("state") == "cleared"][-1]
        harness.wait_for(lambda: self.live_cleared(incident_id), 20,
                         what="the cleared alert as a live event")
        stored = self.ctl(incident_id, "--all")
        self.assertIsNotNone(stored, "estate-ctl incidents --all lists the cleared incident")
        self.assertEqual(stored["state"], "cleared")
        self.assertIn("cleared", stored)
        self.assertEqual(stored.duplicates + cleared.duplicates, [], "keys twice")
        self.assertEqual(differences(stored, cleared), [], "P/alerts cleared vs estate-ctl")
        self.assertEqual(differences(stored, self.live_cleared(incident_id)[-1]), [],
                         "live cleared vs estate-ctl")
        self.assertIsNone(self.rest(incident_id), "a cleared incident is not active")

    def test_vacant_flow_same_in_every_form(self):
        alert = self.raised(lambda a: a.get("rule") == "vacant_flow" and
                            a.get("unit") == "1-102", "vacant_flow of unit 1-102 on P/alerts")
        incident_id = alert["id"]
        # Growing volume updates the incident; the forms are compared at rest.
        self.stack.control.call(cmd="event", device="W-1-102", event="flow", flow_m3h=0.0)
        record = self.check_same_record(incident_id, self.TRANSITION_FORMS,
                                        self.stored_form_names(incident_id))
        self.assertEqual(record["unit"], "1-102")
        self.assertEqual(record["subject_type"], "unit")
        self.assertEqual(record["meter"], "W-1-102")
        self.assertEqual(record["detail"].get("meter"), "W-1-102",
                         "detail names the meter by its id")
        self.assertNotIn("zone", record)


if __name__ == "__main__":
    unittest.main()
