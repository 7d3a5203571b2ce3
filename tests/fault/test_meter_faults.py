"""Issue 5, recovery: one meter on a bus goes silent, slow, answers garbage,
CRC errors (on TCP: a wrong transaction id) or Modbus exceptions, one fault
after another. Its neighbours on the same bus keep their poll rate (within
20%); its readings are quality "error"; it is logged once and then at
growing intervals; it recovers when the fault ends."""
import math
import time
import unittest

from faultlib import FaultCase, log_lines, parse_ts, rate, wait_for

# gw_a (building 1): 11 meters, 1 s polls, 500 ms timeout, no retries.
FAULTS = (
    ("silent", "E-1-101", {}),
    ("slow", "E-1-102", {"delay_ms": 1500}),
    ("garbage", "E-1-201", {}),
    ("crc", "E-1-202", {}),
    ("exception", "E-LIGHT-1", {"code": 0x0B}),
)
NEIGHBOURS = {"W-B1", "W-1-101", "W-1-102", "W-1-201", "W-1-202", "E-B1"}
WINDOW_S = 4.0


class MeterFaultTest(FaultCase):
    def test_faulty_meter_does_not_slow_its_neighbours(self):
        stack = self.stack().start()
        wait_for(lambda: NEIGHBOURS <= {r["meter"] for r in stack.readings()}, 15,
                 what="readings from the bus")
        time.sleep(1)
        t0 = time.time()
        time.sleep(WINDOW_S)
        baseline = rate(stack, NEIGHBOURS, t0, t0 + WINDOW_S)
        print(f"\nneighbours' baseline: {baseline:.2f} readings/s")
        self.assertGreater(baseline, len(NEIGHBOURS) * 0.8)

        for fault, meter, params in FAULTS:
            with self.subTest(fault=fault, meter=meter):
                stack.control.call(cmd="fault", device=meter, fault=fault, **params)
                t_fault = time.time()
                time.sleep(1.2 + WINDOW_S)
                start, end = t_fault + 1.2, t_fault + 1.2 + WINDOW_S
                stack.control.call(cmd="fault", device=meter, fault="none")
                during = rate(stack, NEIGHBOURS, start, end)
                mine = [r for r in stack.readings() if r["meter"] == meter
                        and parse_ts(r["ts"]) >= t_fault + 1.2 and parse_ts(r["ts"]) < end]
                errors = [r for r in mine if r["quality"] == "error"]
                logged = [line for line in log_lines(stack, rf"device {meter} \(slave \d+\): poll failed")
                          if parse_ts(line.split(" ", 1)[0]) >= t_fault]
                print(f"{fault:9s} on {meter:9s}: neighbours {during:.2f}/s "
                      f"({100 * (during / baseline - 1):+.0f}%); {len(errors)} error readings, "
                      f"{len(logged)} log lines")
                self.assertLess(abs(during / baseline - 1), 0.2, "neighbours kept their rate")
                self.assertTrue(errors, "the faulty meter's readings say error")
                self.assertEqual(len(errors), len(mine), [r["quality"] for r in mine])
                # Backoff: after 3 failures the meter is polled less often.
                self.assertLess(len(errors), WINDOW_S + 1)
                # Logged on the 1st, 2nd, 4th, 8th ... failure only.
                self.assertGreaterEqual(len(logged), 1)
                self.assertLessEqual(len(logged), 2 + int(math.log2(max(1, len(errors) + 2))))
                if fault == "exception":
                    self.assertIn("0x0B (gateway target did not respond)", logged[0])

        # Every faulty meter answers again (its backoff is at most 8 s here).
        t_clear = time.time()
        for _, meter, _ in FAULTS:
            wait_for(lambda: any(r["meter"] == meter and r["quality"] == "good" and
                                 parse_ts(r["ts"]) > t_clear for r in stack.readings()),
                     20, what=f"{meter} to recover")
            self.assertTrue(log_lines(stack, rf"device {meter} \(slave \d+\) answers again"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
