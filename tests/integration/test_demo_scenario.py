"""Issue 3 / SPEC "Configuration": the demo site out of the box (etc/demo,
simulator WITH its scripted scenario) raises every rule of SPEC's Rules table
(and battery_low) within the first 120 seconds and clears several of them
later; building 3's DL/T 645 and CJ/T 188 meters, on the simulator's
pseudo-terminals, run backwards, let water through in a vacant unit and run
low on battery too. Issue 4: the
demo, left running, opens a work order for each major or critical incident,
and a shift handover lists the ones still open.

SLOW: one test of about 130 s (the scenario's own timeline; nothing here can
make it faster). Run it alone with
  ESTATE_BUILD_DIR=... python3 -m unittest -v test_demo_scenario
"""
import json
import os
import time
import unittest

from harness import Stack, wait_for

RULES = ["reverse_energy", "vacant_flow", "continuous_flow", "fire_alarm", "fire_fault",
         "fire_disabled", "meter_offline", "implausible_reading", "meter_replaced", "balance_loss",
         "vacant_power", "battery_low"]

# What the scenario (docs/demo-site.md) makes each rule fire on.
EXPECTED_SUBJECT = {
    "reverse_energy": ("meter", "E-1-102"),
    "vacant_flow": ("unit", "1-102"),
    "continuous_flow": ("meter", "W-POOL"),
    "fire_alarm": ("zone", 3),
    "fire_fault": ("zone", 5),
    "fire_disabled": ("zone", 7),
    "meter_offline": ("meter", "E-OFFICE"),
    "implausible_reading": ("meter", "E-2-201"),
    "meter_replaced": ("meter", "E-1-201"),
    "balance_loss": ("meter", "W-MASTER"),
    "vacant_power": ("meter", "E-1-202"),
    "battery_low": ("meter", "W-3-201"),  # CJ/T 188
}
# The same rules on building 3's national-protocol meters.
EXPECTED_NATIONAL = {
    "reverse_energy": ("meter", "E-3-102"),  # DL/T 645
    "vacant_flow": ("unit", "3-202"),        # CJ/T 188
}
RUN_S = 130


class DemoScenarioTest(unittest.TestCase):
    def test_scenario_raises_every_rule_within_120s_and_clears_several(self):
        """slow: ~130 s. Every rule raised for the scenario's subject by
        120 s after the simulator started; fire_alarm (zone 3 reset at 90 s)
        and implausible_reading (E-2-201, clear_s 60 after the 50 s jump)
        cleared with the id they were raised with, vacant_power (E-1-202,
        400 W from 22 s to 55 s) raised and cleared by 120 s; no condition raised twice."""
        stack = Stack(scenario=True)
        try:
            stack.start(gw=False)
            t0 = time.time()  # the scenario's clock starts with the simulator
            stack.gw.start()
            wait_for(lambda: stack.readings(), 15, what="first readings")
            time.sleep(max(0.0, t0 + RUN_S - time.time()))
            alerts = self.timed_alerts(stack)
            with open(os.path.join(stack.workdir, "alerts.jsonl"), "w") as f:
                for t, a in alerts:
                    f.write(json.dumps({"t": round(t - t0, 2), **a}, ensure_ascii=False) + "\n")
            summary = "\n".join(f"{t - t0:7.1f} {a['state']:8} {a['rule']:20} "
                                f"{a.get('meter') or a.get('unit') or ''} {a.get('zone', '')} #{a['id']}"
                                for t, a in alerts)

            raised = {}
            for t, a in alerts:
                if a["state"] == "raised" and self.matches(a):
                    raised.setdefault(a["rule"], (t - t0, a))
            missing = [r for r in RULES if r not in raised]
            self.assertEqual(missing, [], f"rules never raised for the scenario:\n{summary}")
            late = {r: round(t, 1) for r, (t, _) in raised.items() if t > 120.0}
            self.assertEqual(late, {}, f"raised after 120 s:\n{summary}")
            for rule, (kind, subject) in EXPECTED_NATIONAL.items():
                on_it = [t - t0 for t, a in alerts if a["state"] == "raised" and a["rule"] == rule
                         and a.get(kind) == subject]
                self.assertTrue(on_it and on_it[0] <= 120.0,
                                f"{rule} on {subject} not raised by 120 s:\n{summary}")
            for rule, (_, a) in raised.items():
                for key in ("id", "rule", "severity", "state", "location", "ts", "since", "text",
                            "detail"):
                    self.assertIn(key, a, f"{rule}: {a}")

            # cleared later, with the same id
            cleared = {a["id"] for _, a in alerts if a["state"] == "cleared"}
            for rule in ("fire_alarm", "implausible_reading"):
                self.assertIn(raised[rule][1]["id"], cleared, f"{rule} not cleared:\n{summary}")
            # vacant_power raises and clears within the first 120 s
            cleared_at = {a["id"]: t - t0 for t, a in alerts if a["state"] == "cleared"}
            vacant_power = raised["vacant_power"][1]["id"]
            self.assertLessEqual(cleared_at.get(vacant_power, 1e9), 120.0,
                                 f"vacant_power not cleared by 120 s:\n{summary}")
            scenario_cleared = [r for r, (_, a) in raised.items() if a["id"] in cleared]
            self.assertGreaterEqual(len(scenario_cleared), 2, summary)

            # one incident per condition: never raised again while open
            open_ids = {}
            for _, a in alerts:
                key = (a["rule"], a.get("panel"), a.get("zone"), a.get("unit") if a["rule"] ==
                       "vacant_flow" else a.get("meter"))
                if a["state"] == "raised":
                    self.assertNotIn(key, open_ids, f"{key} raised twice:\n{summary}")
                    open_ids[key] = a["id"]
                elif a["state"] == "cleared":
                    self.assertEqual(open_ids.pop(key, None), a["id"], f"{key}:\n{summary}")
            self.check_workorders_and_handover(stack, alerts, summary)
            print(f"\n{summary}")
        except Exception:
            stack.dump_logs()
            raise
        finally:
            stack.close()

    def check_workorders_and_handover(self, stack, alerts, summary):
        """One work order per major/critical incident and per battery_low one
        (maintenance: rules.battery_low.open_workorder) (P/workorders/<id>,
        retained), and `estate-ctl handover` (through the running daemon)
        lists every work order that is still open, and is in the patrol log."""
        serious = {a["id"] for _, a in alerts
                   if a["state"] == "raised" and (a["severity"] in ("major", "critical")
                                                  or a["rule"] == "battery_low")}
        self.assertTrue(serious, summary)
        orders = {}
        for wo in self.workorder_messages(stack):
            if "incident" in wo:
                orders.setdefault(wo["incident"], set()).add(wo["id"])
        missing = sorted(serious - set(orders))
        self.assertEqual(missing, [], f"incidents without a work order: {missing}\n{summary}")
        self.assertTrue(all(len(ids) == 1 for ids in orders.values()), orders)

        res = stack.ctl("--json", "handover", "--from", "早班 zhang", "--to", "中班 li")
        result = json.loads(res.stdout)
        self.assertTrue(result.get("ok"), result)
        handover = result["handover"]
        listed = {o["id"] for o in handover["open_workorders"]}
        open_orders = set()
        for wo in self.workorder_messages(stack):
            if wo["state"] in ("verified", "cancelled"):
                open_orders.discard(wo["id"])
            else:
                open_orders.add(wo["id"])
        self.assertTrue(open_orders, "the demo should leave work orders open")
        self.assertEqual(open_orders - listed, set(), handover)
        self.assertTrue(handover["open_incidents"], handover)
        entries = wait_for(lambda: [e for e in stack.sub.json_on("/patrol", 0)
                                    if e.get("kind") == "handover"], 10, what="handover entry")
        self.assertIn("早班 zhang", entries[-1]["author"] + entries[-1]["text"])

    @staticmethod
    def workorder_messages(stack):
        """Every state of every work order published on P/workorders/<id>, in order."""
        out = []
        for _, topic, payload, _ in stack.sub.snapshot():
            if topic.startswith(f"{stack.prefix}/workorders/") and payload:
                out.append(json.loads(payload))
        return out

    @staticmethod
    def timed_alerts(stack):
        out = []
        for t, topic, payload, _ in stack.sub.snapshot():
            if topic == f"{stack.prefix}/alerts" and payload:
                out.append((t, json.loads(payload)))
        return out

    @staticmethod
    def matches(a):
        kind, subject = EXPECTED_SUBJECT[a["rule"]]
        if kind == "zone":
            return a.get("panel") == "FP-1" and a.get("zone") == subject
        return a.get(kind) == subject


if __name__ == "__main__":
    unittest.main(verbosity=2)
