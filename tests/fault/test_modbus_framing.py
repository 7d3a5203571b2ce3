"""Modbus TCP framing under a misbehaving converter, on bus gw_a (11 meters,
1 s polls, 500 ms timeout, no retries), once with one request at a time and
once pipelined: one duplicated reply frame costs the bus at most one poll;
a reply whose MBAP length disagrees with its PDU fails that meter's polls
and stalls no neighbour; a reply from another unit id is never taken as a
good reading."""
import time
import unittest

from faultlib import FaultCase, parse_ts, wait_for

BUS_METERS = {"W-B1", "W-1-101", "W-1-102", "W-1-201", "W-1-202", "E-1-101", "E-1-102",
              "E-1-201", "E-1-202", "E-B1", "E-LIGHT-1"}
WINDOW_S = 5.0


def readings_between(stack, start, end):
    return [r for r in stack.readings() if start <= parse_ts(r["ts"]) < end]


class ModbusFramingTest(FaultCase):
    def run_faults(self, gw_sets=()):
        stack = self.stack(gw_sets=gw_sets).start()
        wait_for(lambda: BUS_METERS <= {r["meter"] for r in stack.readings()
                                        if r["quality"] == "good"}, 20,
                 what="good readings from every meter of the bus")
        time.sleep(1)

        with self.subTest(fault="duplicate"):
            # A converter that takes 20 ms per answer (as one with a serial
            # line behind it does) sends one reply frame twice, once.
            for meter in BUS_METERS - {"E-1-101"}:
                stack.control.call(cmd="fault", device=meter, fault="slow", delay_ms=20)
            time.sleep(1)
            t0 = time.time()
            stack.control.call(cmd="fault", device="E-1-101", fault="duplicate", delay_ms=20,
                               count=1)
            wait_for(lambda: stack.control.call(cmd="get", device="E-1-101")["fault"] == "none",
                     5, what="the duplicated reply")
            stack.control.call(cmd="fault", device="E-1-101", fault="slow", delay_ms=20)
            time.sleep(t0 + WINDOW_S - time.time())
            for meter in BUS_METERS:
                stack.control.call(cmd="fault", device=meter, fault="none")
            got = [r for r in readings_between(stack, t0, t0 + WINDOW_S)
                   if r["meter"] in BUS_METERS]
            bad = [(r["meter"], r["quality"]) for r in got if r["quality"] != "good"]
            print(f"\nduplicate: {len(got)} readings, not good: {bad}")
            self.assertLessEqual(len(bad), 1, "one duplicated frame costs at most one poll")
            late = {r["meter"] for r in got if r["quality"] == "good"
                    and parse_ts(r["ts"]) >= t0 + WINDOW_S - 2}
            self.assertEqual(late, BUS_METERS, "every meter reads good again")

        with self.subTest(fault="bad_length"):
            stack.control.call(cmd="fault", device="E-1-102", fault="bad_length")
            t0 = time.time()
            time.sleep(WINDOW_S)
            stack.control.call(cmd="fault", device="E-1-102", fault="none")
            got = readings_between(stack, t0 + 0.5, t0 + WINDOW_S)
            mine = [r["quality"] for r in got if r["meter"] == "E-1-102"]
            others = [r for r in got if r["meter"] in BUS_METERS - {"E-1-102"}]
            bad = [(r["meter"], r["quality"]) for r in others if r["quality"] != "good"]
            print(f"bad_length: E-1-102 {mine}; neighbours {len(others)} readings, "
                  f"not good: {bad}")
            self.assertTrue(mine)
            self.assertEqual(set(mine), {"error"}, "a reply with a lying length is not taken")
            self.assertEqual(bad, [], "the neighbours are not stalled")
            # 10 neighbours at 1 s polls: about 45 readings in 4.5 s.
            self.assertGreater(len(others), 10 * (WINDOW_S - 0.5) * 0.8)

        with self.subTest(fault="wrong_unit"):
            stack.control.call(cmd="fault", device="E-1-201", fault="wrong_unit")
            t0 = time.time()
            time.sleep(WINDOW_S)
            stack.control.call(cmd="fault", device="E-1-201", fault="none")
            got = readings_between(stack, t0 + 0.5, t0 + WINDOW_S)
            mine = [r["quality"] for r in got if r["meter"] == "E-1-201"]
            others = [r for r in got if r["meter"] in BUS_METERS - {"E-1-201"}]
            bad = [(r["meter"], r["quality"]) for r in others if r["quality"] != "good"]
            print(f"wrong_unit: E-1-201 {mine}; neighbours not good: {bad}")
            self.assertTrue(mine)
            self.assertEqual(set(mine), {"error"}, "a reply from another unit is not data")
            self.assertEqual(bad, [])

        # Everything answers again.
        t_clear = time.time()
        wait_for(lambda: BUS_METERS <= {r["meter"] for r in stack.readings()
                                        if r["quality"] == "good" and
                                        parse_ts(r["ts"]) > t_clear}, 20,
                 what="every meter of the bus to recover")

    def test_one_request_at_a_time(self):
        self.run_faults()

    def test_pipelined(self):
        self.run_faults(gw_sets=("buses.gw_a.pipeline_depth=8",))


if __name__ == "__main__":
    unittest.main(verbosity=2)
