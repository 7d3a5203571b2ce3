"""test_metrics.py - health and metrics of a running estate-gw: GET /healthz
answers without a session; GET /metrics follows the Prometheus text format
(a strict checker here, and Debian's promtool check metrics, which
scripts/deps.sh installs: a missing promtool fails the test) and needs a session under the default http.metrics = "signed_in"; the
counters move: a silenced meter's bus errors grow, and the outbox depth
rises while the broker is away (then "mqtt disconnected" makes the health
degraded, in /healthz and in the retained P/status). The example Prometheus
config and alert rules in etc/prometheus pass promtool check config/rules."""
import json
import math
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import wait_for

USER, PASSWORD = "viewer", "view123"
PROMETHEUS_ETC = os.path.join(harness.ROOT, "etc", "prometheus")


def promtool():
    """Debian's promtool (package prometheus, installed by scripts/deps.sh)."""
    path = shutil.which("promtool")
    assert path, "promtool not found: run scripts/deps.sh (Debian package prometheus)"
    return path


def promtool_check_metrics(text):
    """promtool check metrics on an exposition; raises AssertionError with its
    output when it finds a fault (lint warnings included: it exits 1 then)."""
    res = subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                         capture_output=True, timeout=30)
    assert res.returncode == 0, "promtool check metrics: " + res.stdout + res.stderr

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def check_exposition(text):
    """Strictly checks the Prometheus text format (version 0.0.4); returns
    {(name, labels): value}. Raises AssertionError with the line at fault."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples, seen_families = {}, set(), {}, []
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        assert line, f"empty {where}"
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(NAME, name), where
            assert name not in helps, f"second HELP, {where}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in TYPES and re.fullmatch(NAME, parts[2]), where
            assert parts[2] not in types, f"second TYPE, {where}"
            types[parts[2]] = parts[3]
            seen_families.append(parts[2])
            continue
        assert not line.startswith("#"), f"stray comment, {where}"
        m = SAMPLE.match(line)
        assert m, f"bad sample, {where}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name) \
            if re.sub(r"_(bucket|sum|count)$", "", name) in types else name
        assert family in types, f"sample before its TYPE, {where}"
        assert seen_families[-1] == family, f"family not contiguous, {where}"
        if types[family] == "counter":
            assert name.endswith("_total"), f"counter without _total, {where}"
        v = float(value)  # accepts +Inf, NaN as the format does
        if types[family] == "counter":
            assert v >= 0 and not math.isnan(v), where
        assert (name, labels) not in samples, f"duplicate sample, {where}"
        samples[(name, labels)] = v
    for family, kind in types.items():
        if kind != "histogram":
            continue
        buckets = [(k, v) for k, v in samples.items() if k[0] == family + "_bucket"]
        assert buckets, f"histogram {family} without buckets"
        by_series = {}
        for (name, labels), v in buckets:
            le = re.search(r'le="([^"]*)"', labels).group(1)
            series = re.sub(r',?le="[^"]*"', "", labels)
            by_series.setdefault(series, []).append((float(le), v))
        for series, rows in by_series.items():
            rows.sort()
            assert rows[-1][0] == math.inf, f"{family}{series}: no +Inf bucket"
            counts = [v for _, v in rows]
            assert counts == sorted(counts), f"{family}{series}: buckets not cumulative"
            assert samples[(family + "_count", series)] == counts[-1], \
                f"{family}{series}: _count differs from the +Inf bucket"
    return samples


class MetricsTest(unittest.TestCase):
    def setUp(self):
        self.stack = harness.Stack(persistent_broker=True).start()
        self.base = f"http://127.0.0.1:{self.stack.http_port}"
        harness.wait_port(self.stack.http_port, 15)

    def tearDown(self):
        if hasattr(self._outcome, "result") and not self._outcome.result.wasSuccessful():
            self.stack.dump_logs()
        self.stack.close()

    def get(self, path, token=None):
        req = urllib.request.Request(self.base + path)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()

    def login(self):
        body = json.dumps({"user": USER, "password": PASSWORD}).encode()
        req = urllib.request.Request(self.base + "/api/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.loads(resp.read())["token"]

    def health(self):
        status, _, body = self.get("/healthz")
        return status, json.loads(body)

    def metrics(self, token):
        status, ctype, text = self.get("/metrics", token)
        self.assertEqual(status, 200, text)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        return text, check_exposition(text)

    def test_health_and_metrics_move(self):
        stack = self.stack
        wait_for(lambda: len(stack.readings()) > 0, 15, what="a first reading")
        status, health = self.health()
        self.assertEqual(status, 200, health)
        self.assertIn(health["status"], ("ok", "degraded"))
        self.assertIsInstance(health["reasons"], list)
        wait_for(lambda: self.health()[1]["status"] == "ok", 10, what="health ok")
        self.assertEqual(self.health()[1]["reasons"], [])
        wait_for(lambda: any(m.get("health") == "ok" for m in stack.sub.json_on("/status")), 10,
                 what="P/status with health ok")

        # /metrics needs a session by default.
        self.assertEqual(self.get("/metrics")[0], 401)
        token = self.login()
        text, samples = self.metrics(token)
        promtool_check_metrics(text)
        for bus in ("gw_a", "gw_b", "fire"):
            self.assertGreater(samples[("estate_bus_polls_total", f'{{bus="{bus}"}}')], 0)
            self.assertGreater(
                samples[("estate_bus_poll_duration_seconds_count", f'{{bus="{bus}"}}')], 0)
        self.assertEqual(samples[("estate_mqtt_connected", "")], 1)
        self.assertGreater(samples[("estate_mqtt_messages_published_total", "")], 0)
        self.assertGreater(samples[("estate_sqlite_file_bytes", '{file="db"}')], 0)
        # The store checkpointed the WAL at open at least (more every 1000 pages).
        self.assertGreaterEqual(samples[("estate_sqlite_checkpoints_total", "")], 1)
        last_checkpoint = samples[("estate_sqlite_last_checkpoint_timestamp_seconds", "")]
        self.assertGreater(last_checkpoint, time.time() - 600)
        self.assertLessEqual(last_checkpoint, time.time() + 1)
        self.assertGreaterEqual(samples[("estate_sqlite_wal_pages", "")], 0)
        self.assertGreater(samples[("process_cpu_seconds_total", "")], 0)
        self.assertGreater(samples[("process_resident_memory_bytes", "")], 1 << 20)

        # A silenced meter: its bus's errors grow and the health is degraded.
        errors_key = ("estate_bus_errors_total", '{bus="gw_a"}')
        errors_before = samples[errors_key]
        stack.control.call(cmd="fault", device="W-1-101", fault="silent")
        wait_for(lambda: self.metrics(token)[1][errors_key] >= errors_before + 2, 15,
                 what="bus gw_a errors growing")
        timeouts = self.metrics(token)[1][("estate_bus_timeouts_total", '{bus="gw_a"}')]
        self.assertGreater(timeouts, 0)
        wait_for(lambda: self.health()[1]["status"] == "degraded", 10, what="health degraded")
        status, health = self.health()
        self.assertEqual(status, 200)
        self.assertTrue(any("gw_a" in r for r in health["reasons"]), health)
        stack.control.call(cmd="fault", device="W-1-101", fault="none")
        wait_for(lambda: self.health()[1]["status"] == "ok", 15, what="health ok again")

        # Broker outage: the outbox fills, MQTT shows disconnected.
        depth_key = ("estate_outbox_messages", '{kind="reading"}')
        stack.broker.stop()
        wait_for(lambda: self.metrics(token)[1][("estate_mqtt_connected", "")] == 0, 15,
                 what="mqtt disconnected")
        wait_for(lambda: self.metrics(token)[1][depth_key] >= 10, 15, what="outbox depth rising")
        samples = self.metrics(token)[1]
        self.assertGreater(samples[("estate_outbox_oldest_age_seconds", "")], 0)
        status, health = self.health()
        self.assertEqual(status, 200)
        self.assertEqual(health["status"], "degraded")
        self.assertIn("mqtt disconnected", health["reasons"])
        promtool_check_metrics(self.metrics(token)[0])  # with a histogram of timeouts too
        stack.broker.start()
        wait_for(lambda: self.metrics(token)[1][depth_key] < 10, 30, what="outbox drained")


class MetricsAccessTest(unittest.TestCase):
    """http.metrics = "off" hides /metrics; "public" needs no session."""

    def run_with(self, access):
        stack = harness.Stack(gw_sets=[f"http.metrics={access}"]).start(broker=False, sim=False)
        try:
            harness.wait_port(stack.http_port, 15)
            url = f"http://127.0.0.1:{stack.http_port}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=15) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        finally:
            stack.close()

    def test_off_and_public(self):
        self.assertEqual(self.run_with("off")[0], 404)
        status, text = self.run_with("public")
        self.assertEqual(status, 200, text)
        samples = check_exposition(text)
        self.assertEqual(samples[("estate_mqtt_connected", "")], 0)
        # The example alert rules only use metrics the gateway exposes.
        names = {name for name, _ in samples}
        with open(os.path.join(PROMETHEUS_ETC, "estate-gw.rules.yml")) as f:
            used = set(re.findall(r"\b(estate_[a-z_]+)", f.read()))
        self.assertTrue(used)
        self.assertEqual(used - names, set())

    def test_example_prometheus_config_and_rules_pass_promtool(self):
        for verb, name in (("config", "prometheus.yml"), ("rules", "estate-gw.rules.yml")):
            res = subprocess.run([promtool(), "check", verb, os.path.join(PROMETHEUS_ETC, name)],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 0, f"promtool check {verb} {name}: "
                             + res.stdout + res.stderr)
            self.assertIn("SUCCESS", res.stdout)

    def test_checkers_refuse_bad_text(self):
        for bad in ["x 1",                                         # no TYPE
                    "# TYPE x counter\nx 1\n",                     # counter without _total
                    "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",  # duplicate
                    "# TYPE x gauge\nx{a=b} 1\n",                  # unquoted label
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n"]:
            with self.assertRaises(AssertionError, msg=bad):
                check_exposition(bad)
        # promtool judges too: a counter without _total, a broken sample.
        for bad in ["# TYPE x counter\nx 1\n", "# TYPE x gauge\nx{a=b} 1\n"]:
            with self.assertRaises(AssertionError, msg=bad):
                promtool_check_metrics(bad)
        promtool_check_metrics("# HELP x_total A thing.\n# TYPE x_total counter\nx_total 1\n")


if __name__ == "__main__":
    unittest.main()
