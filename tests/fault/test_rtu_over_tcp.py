"""RTU over TCP: estate-sim serves an RS-485 line behind a simulated
serial-to-Ethernet converter in transparent mode (an rtu_over_tcp endpoint:
RTU frames with CRC over a TCP stream, wire timing of its serial side) and
estate-gw polls it over an rtu_over_tcp bus. First the readings carry the
simulator's values and no frame is broken; then one meter after another goes
silent, slow, answers garbage, CRC errors or exceptions, the faults of the
TCP fault test (test_meter_faults.py): its readings say error, it is logged
once and then at growing intervals, its neighbours on the same line keep
their poll rate (within 20%) and it recovers when the fault ends."""
import math
import shutil
import tempfile
import time
import unittest

from faultlib import log_lines, parse_ts, rate
from rtu_site import endpoint_stats, rtu_stack, start_rtu_stack, wait_for

NMETERS = 11
FAULTS = (
    ("silent", "M001", {}),
    ("slow", "M002", {"delay_ms": 1500}),
    ("garbage", "M003", {}),
    ("crc", "M004", {}),
    ("exception", "M005", {"code": 0x0B}),
    ("wrong_unit", "M011", {}),  # a reply from another slave id: not taken as data
)
NEIGHBOURS = {"M006", "M007", "M008", "M009", "M010"}
WINDOW_S = 6.0


class RtuOverTcpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="estate-rtu-tcp-")
        cls.stack = rtu_stack(cls.workdir, NMETERS, baud=19200, poll_interval_ms=1000,
                              timeout_ms=300, transport="rtu_over_tcp",
                              gw_sets=("buses.rs485.retries=0",))
        try:
            start_rtu_stack(cls.stack)
        except Exception:
            cls.stack.dump_logs()
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and hasattr(result, "failures"):
            if any(t is self for t, _ in result.failures + result.errors):
                self.stack.dump_logs()

    def test_values_match_and_frames_are_clean(self):
        stack = self.stack
        ids = {m[0] for m in stack.rtu_meters}
        started = time.time()
        wait_for(lambda: {r["meter"] for r in stack.readings(started)
                          if r["quality"] == "good"} >= ids,
                 30, what="a good reading from every meter")
        before = endpoint_stats(stack)  # the faults test may have run first
        stack.control.call(cmd="freeze", on=True)
        try:
            time.sleep(2.0)
            frozen_at = time.time()
            expected = {i: stack.control.call(cmd="get", device=i) for i in ids}
            wait_for(lambda: {r["meter"] for r in stack.readings(frozen_at)
                              if r["quality"] == "good"} >= ids,
                     30, what="fresh readings after the freeze")
            compared = 0
            for reading in stack.readings(frozen_at):
                if reading["quality"] != "good":
                    continue
                for quantity, value in expected[reading["meter"]]["values"].items():
                    got = reading["values"].get(quantity)
                    if quantity == "serial" or got is None or isinstance(value, str):
                        continue
                    self.assertTrue(math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9),
                                    f"{reading['meter']} {quantity}: gateway {got} "
                                    f"simulator {value}")
                    compared += 1
            self.assertGreater(compared, 4 * len(ids))
        finally:
            stack.control.call(cmd="freeze", on=False)
        stats = endpoint_stats(stack)
        self.assertEqual(stats["type"], "rtu_over_tcp")
        delta = {k: stats[k] - before[k] for k in ("requests", "bad_frames", "dropped", "replies")}
        self.assertGreater(delta["requests"], 2 * len(ids))
        self.assertEqual(delta["bad_frames"], 0, delta)
        self.assertEqual(delta["dropped"], 0, delta)
        self.assertEqual(delta["replies"], delta["requests"], delta)

    def test_faulty_meter_does_not_disturb_its_neighbours(self):
        stack = self.stack
        wait_for(lambda: NEIGHBOURS <= {r["meter"] for r in stack.readings()}, 15,
                 what="readings from the neighbours")
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
                neighbour_errors = [r for r in stack.readings() if r["meter"] in NEIGHBOURS
                                    and start <= parse_ts(r["ts"]) < end
                                    and r["quality"] != "good"]
                mine = [r for r in stack.readings() if r["meter"] == meter
                        and start <= parse_ts(r["ts"]) < end]
                errors = [r for r in mine if r["quality"] == "error"]
                logged = [line for line in
                          log_lines(stack, rf"device {meter} \(slave \d+\): poll failed")
                          if parse_ts(line.split(" ", 1)[0]) >= t_fault]
                print(f"{fault:9s} on {meter}: neighbours {during:.2f}/s "
                      f"({100 * (during / baseline - 1):+.0f}%), {len(neighbour_errors)} not "
                      f"good; {len(errors)} error readings, {len(logged)} log lines")
                self.assertLess(abs(during / baseline - 1), 0.2, "neighbours kept their rate")
                self.assertEqual(neighbour_errors, [], "neighbours kept reading well")
                self.assertTrue(errors, "the faulty meter's readings say error")
                self.assertEqual(len(errors), len(mine), [r["quality"] for r in mine])
                self.assertLess(len(errors), WINDOW_S + 1)
                self.assertGreaterEqual(len(logged), 1)
                self.assertLessEqual(len(logged), 2 + int(math.log2(max(1, len(errors) + 2))))
                if fault == "exception":
                    self.assertIn("0x0B (gateway target did not respond)", logged[0])

        t_clear = time.time()
        for _, meter, _ in FAULTS:
            wait_for(lambda: any(r["meter"] == meter and r["quality"] == "good" and
                                 parse_ts(r["ts"]) > t_clear for r in stack.readings()),
                     20, what=f"{meter} to recover")
            self.assertTrue(log_lines(stack, rf"device {meter} \(slave \d+\) answers again"))
        self.assertTrue(stack.gw.alive())


if __name__ == "__main__":
    unittest.main(verbosity=2)
