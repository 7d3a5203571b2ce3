"""test_reload.py - estate-gw reloads its config on SIGHUP and estate-ctl
reload while it polls every 200 ms: a threshold change takes effect on the
next sample, a meter and a bus are added and removed, an untouched bus keeps
polling without a hole, an open incident is neither lost nor duplicated, and
a config with a syntax or a semantic error is refused with FILE:LINE while
the old one keeps running."""
import os
import signal
import time
import unittest

from faultlib import FaultCase, largest_gap, log_lines, parse_ts, query, wait_for

POLL_S = 0.2

HEAD = """
gateway = {{ id = "gw1"; site = "test"; data_dir = "{data_dir}"; log_level = "info"; }};
mqtt = {{ uri = "tcp://127.0.0.1:{mqtt}"; topic_prefix = "estate/test/gw1"; }};
http = {{ listen = ""; }};
units = ( {{ id = "1-101"; building = "1"; occupancy = "occupied"; }},
          {{ id = "2-102"; building = "2"; occupancy = "occupied"; }} );
"""

BUS = """  {{ name = "{name}"; type = "tcp"; host = "127.0.0.1"; port = {port};
    timeout_ms = 300; retries = 0; poll_interval_ms = 200; }}"""

METERS = {
    "E-1-101": 'slave = 11; driver = "sdm120"; kind = "electricity"; category = "unit"; '
               'unit = "1-101"; serial = "20260015";',
    "W-1-101": 'slave = 2; driver = "xintai-water"; kind = "water"; category = "unit"; '
               'unit = "1-101"; serial = "20260004";',
    "E-1-102": 'slave = 12; driver = "ddsu666"; kind = "electricity"; category = "office"; '
               'location = "office"; serial = "20260016";',
    "E-2-101": 'slave = 21; driver = "ddsu666"; kind = "electricity"; category = "shop"; '
               'location = "shop"; serial = "20260019"; function = 4;',
    "E-2-102": 'slave = 22; driver = "sdm120"; kind = "electricity"; category = "unit"; '
               'unit = "2-102"; serial = "20260020"; word_order = "BADC";',
}

RULES = """
rules = {{
  reverse_energy = {{ severity = "major"; hold_s = 0; clear_s = 60; negative_power_hold_s = 0;
                     min_negative_power_w = {min_w}; rating_fraction = 0.0; }};
  meter_offline = {{ severity = "minor"; failures = 3; }};
}};
"""

PANEL = """fire_panels = ( { id = "FP-1"; bus = "fire"; slave = 1; driver = "notifier-gw"; zones = 8;
  location = "fire control room"; } );
"""


def config_text(stack, buses, meters, panel, min_w, broken=""):
    ports = dict(stack.ports)
    ports["gw_c"] = ports["gw_a"]  # a second converter port on the same simulated bus
    text = HEAD.format(data_dir=stack.data_dir, mqtt=stack.broker.port)
    text += "buses = (\n" + ",\n".join(BUS.format(name=b, port=ports[b]) for b in buses) + "\n);\n"
    text += "meters = (\n" + ",\n".join(
        f'  {{ id = "{m}"; bus = "{bus}"; {METERS[m]} }}' for m, bus in meters) + "\n);\n"
    if panel:
        text += PANEL
    text += RULES.format(min_w=min_w)
    return text + broken


OLD = dict(buses=["gw_a", "gw_b", "fire"],
           meters=[("E-1-101", "gw_a"), ("W-1-101", "gw_a"), ("E-2-101", "gw_b"),
                   ("E-2-102", "gw_b")],
           panel=True, min_w=5000)
NEW = dict(buses=["gw_a", "gw_b", "gw_c"],
           meters=[("E-1-101", "gw_a"), ("E-2-101", "gw_b"), ("E-2-102", "gw_b"),
                   ("E-1-102", "gw_c")],
           panel=False, min_w=10)


class ReloadTest(FaultCase):
    def make_stack(self):
        stack = self.stack()
        self.conf = os.path.join(stack.workdir, "gw.conf")
        self.write(stack, **OLD)
        # The gateway runs from this file alone: no --set, so that a reload
        # reads exactly what the file says.
        stack.gw_conf = self.conf
        stack.gw_argv = [stack.gw_argv[0], "-c", self.conf]
        stack.gw = type(stack.gw)(stack.gw_argv, os.path.join(stack.workdir, "gw.log"))
        return stack

    def write(self, stack, broken="", **kwargs):
        with open(self.conf, "w") as f:
            f.write(config_text(stack, broken=broken, **kwargs))

    def ctl_reload(self, stack):
        return stack.ctl("reload", check=False)

    def times(self, stack, meter, since=0.0):
        return sorted(parse_ts(r["ts"]) for r in stack.readings(since) if r["meter"] == meter)

    def test_reload_under_load(self):
        stack = self.make_stack().start()
        started = time.time()
        wait_for(lambda: len(self.times(stack, "E-2-101")) > 10 and self.times(stack, "E-1-101")
                 and stack.sub.json_on("/panels/FP-1/state"), 20, what="readings on every bus")
        # An incident open before the reload: a silent meter on the bus that stays.
        stack.control.call(cmd="fault", device="E-2-101", fault="silent")
        offline = wait_for(lambda: [a for a in stack.alerts() if a.get("meter") == "E-2-101" and
                                    a["rule"] == "meter_offline" and a["state"] == "raised"],
                           15, what="E-2-101 offline")
        # ... and one on a meter the new config removes: it stays open in the store.
        stack.control.call(cmd="fault", device="W-1-101", fault="silent")
        wait_for(lambda: [a for a in stack.alerts() if a.get("meter") == "W-1-101" and
                          a["rule"] == "meter_offline" and a["state"] == "raised"],
                 15, what="W-1-101 offline")
        # Power that only the new threshold calls reverse.
        stack.control.call(cmd="event", device="E-2-102", event="set", quantity="power_w",
                           value=-50)
        time.sleep(1.0)
        self.assertFalse([a for a in stack.alerts() if a["rule"] == "reverse_energy"],
                         "-50 W is above the old -5000 W threshold")

        # 1. A config with a syntax error, by SIGHUP: refused with FILE:LINE.
        self.write(stack, broken="rules = { oops\n", **OLD)
        stack.gw.proc.send_signal(signal.SIGHUP)
        refused = wait_for(lambda: log_lines(stack, r"reload: .*gw\.conf:\d+: "), 10,
                           what="the syntax error in the log")
        self.assertTrue(refused)
        wait_for(lambda: log_lines(stack, r"reload: refused"), 5, what="the refusal")
        # 2. A semantic error, by SIGHUP and by estate-ctl: refused with
        # FILE:LINE (estate-ctl: exit 2, nothing sent).
        bad = dict(NEW, meters=NEW["meters"] + [("W-1-101", "nowhere")])
        self.write(stack, **bad)
        stack.gw.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log_lines(stack, r"reload: .*gw\.conf:\d+: .*nowhere"), 10,
                 what="the semantic error in the log")
        wait_for(lambda: len(log_lines(stack, r"reload: refused")) == 2, 5, what="the refusal")
        res = self.ctl_reload(stack)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertRegex(res.stderr, r"gw\.conf:\d+: .*nowhere")
        self.assertIn("reload refused", res.stderr)
        # The old config still runs: all its buses poll, the panel too.
        t = time.time()
        wait_for(lambda: self.times(stack, "W-1-101", t), 5, what="W-1-101 still polled")
        wait_for(lambda: stack.sub.json_on("/panels/FP-1/state", 0) and
                 self.times(stack, "E-2-102", t), 5, what="old config running")
        self.assertFalse([a for a in stack.alerts() if a["rule"] == "reverse_energy"])

        # 3. The real change, by estate-ctl.
        self.write(stack, **NEW)
        before = time.time()
        res = self.ctl_reload(stack)
        reloaded_at = time.time()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        for words in ("meters added: E-1-102", "meters removed: W-1-101",
                      "buses added: gw_c", "buses removed: fire", "rules changed"):
            self.assertIn(words, res.stdout)
        self.assertNotIn("gw_b", res.stdout, "bus gw_b did not change: it keeps polling")
        # The threshold takes effect on E-2-102's next sample.
        reverse = wait_for(lambda: [a for a in stack.alerts(before) if a["rule"] == "reverse_energy"
                                    and a.get("meter") == "E-2-102"], 5,
                           what="reverse_energy under the new threshold")
        self.assertEqual(reverse[0]["state"], "raised")
        self.assertEqual(reverse[0]["detail"].get("threshold_w"), -10, reverse[0])
        # The new meter and bus poll; the removed ones do not.
        wait_for(lambda: self.times(stack, "E-1-102", reloaded_at), 5, what="E-1-102 polled")
        time.sleep(2.0)
        late = reloaded_at + 0.5
        self.assertFalse(self.times(stack, "W-1-101", late), "a removed meter is still polled")
        self.assertTrue(self.times(stack, "E-1-101", late), "gw_a polls again")

        # The untouched bus lost no reading across the reload. On a loaded
        # machine a poll can be late anyway: the bound is then the worst hole
        # the same meter showed before, so this measures what the reload costs.
        e22 = self.times(stack, "E-2-102")
        across = [t for t in e22 if before - 2 <= t <= reloaded_at + 2]
        steady = [t for t in e22 if started + 3 <= t <= before - 2]
        self.assertGreater(len(across), 15)
        bound = max(2 * POLL_S, largest_gap(steady)) + 0.35
        gap = largest_gap(across)
        self.assertLessEqual(gap, bound, f"a {gap:.2f} s hole in gw_b's readings across the reload "
                             f"({largest_gap(steady):.2f} s at most before it)")
        self.assertTrue(log_lines(stack, r"bus fire: stopped \(reload\)"))
        self.assertFalse(log_lines(stack, r"bus gw_b: (stopped|started)"))

        # The open incident is neither lost nor raised again.
        self.assertEqual(len([a for a in stack.alerts() if a.get("meter") == "E-2-101" and
                              a["rule"] == "meter_offline" and a["state"] == "raised"]), 1)
        rows = query(stack, "SELECT id FROM incidents WHERE rule='meter_offline' AND "
                            "subject='E-2-101' AND state='open'")
        self.assertEqual([r[0] for r in rows], [offline[0]["id"]])
        # ... and clears once the meter answers again, exactly once.
        stack.control.call(cmd="fault", device="E-2-101", fault="none")
        wait_for(lambda: [a for a in stack.alerts() if a.get("meter") == "E-2-101" and
                          a["rule"] == "meter_offline" and a["state"] == "cleared"], 10,
                 what="E-2-101 back")
        gone = query(stack, "SELECT count(*) FROM incidents WHERE rule='meter_offline' AND "
                            "subject='W-1-101' AND state='open'")
        self.assertEqual(gone[0][0], 1, "a removed meter's open incident stays in the store")
        entries = query(stack, "SELECT text FROM patrol WHERE kind='config'")
        self.assertEqual(len(entries), 1, entries)
        self.assertRegex(entries[0][0], r"meters added: E-1-102")

        # 4. A second reload while gw_b still polls on the first config: its
        # samples map through both reloads (W-1-101 back first in the list
        # shifts every index). The readings stay E-2-102's own (-50 W).
        self.write(stack, **dict(NEW, min_w=5000,
                                 meters=[("W-1-101", "gw_a")] + NEW["meters"]))
        again = time.time()
        res = self.ctl_reload(stack)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("meters added: W-1-101", res.stdout)
        wait_for(lambda: self.times(stack, "W-1-101", again + 0.5), 5, what="W-1-101 back")
        time.sleep(1.0)
        late = [r for r in stack.readings(again + 0.3) if r["meter"] == "E-2-102"]
        self.assertGreater(len(late), 3)
        self.assertTrue(all(r["values"]["power_w"] == -50 for r in late), late[:3])
        self.assertFalse(log_lines(stack, r"bus gw_b: (stopped|started)"))
        self.assertEqual(len([a for a in stack.alerts() if a["rule"] == "reverse_energy" and
                              a["state"] == "raised"]), 1, "the open incident is not raised again")
        self.assertTrue(stack.gw.alive())


if __name__ == "__main__":
    unittest.main()
