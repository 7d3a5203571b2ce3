"""Issue 5, recovery: the broker is down when the gateway starts. The gateway
starts anyway, polls and stores; when the broker appears it connects by
itself and delivers the backlog, oldest first, without holes, also when the gateway was killed meanwhile."""
import signal
import time
import unittest

from faultlib import (FaultCase, first_arrivals, largest_gap, log_lines, log_ts, outbox_count,
                      parse_ts, scalar, wait_for)


# How long a bus of the demo takes to read each of its meters once: the poll
# interval (1 s) on the Modbus converters. On building 3's 2400-baud lines
# (poll_interval_ms 2000) the wire needs about 3.1 s for four DL/T 645 meters,
# more with the every-10th-poll items, and 1.1 s for four CJ/T 188 ones; after
# a start the last meter of a line is read that much after the first.
CYCLE_S = {"b3_elec": 5.0, "b3_water": 3.0}

class BrokerDownAtStartTest(FaultCase):
    def test_starts_without_broker_then_delivers_backlog(self):
        stack = self.stack(persistent_broker=True)
        # The consumer's persistent session exists before the outage (as a
        # real back office's would), so it misses nothing while it reconnects.
        stack.start(sim=False, gw=False)
        stack.sub.client.publish(f"{stack.prefix}/test/marker", "x", qos=1, retain=True)
        wait_for(lambda: stack.sub.snapshot(), 5, what="the subscriber's session")
        stack.broker.stop()

        t_start = time.time()
        stack.start(broker=False)
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM readings", default=0) > 200, 20,
                 what="readings stored without a broker")
        self.sleep(max(0.0, t_start + 10 - time.time()))
        self.assertTrue(stack.gw.alive(), "the gateway runs without a broker")
        queued = outbox_count(stack)
        self.assertGreater(queued, 200, "readings wait in the outbox")
        self.assertTrue(log_lines(stack, r"mqtt: cannot connect"), "the failure is logged")
        # The outbox survives a kill -9: the next run sends it first.
        t_kill = time.time()
        stack.restart_gw(signal.SIGKILL)
        self.sleep(3)
        self.assertTrue(log_lines(stack, r"outbox: \d+ readings and \d+ events queued from the last run"))
        queued = outbox_count(stack)

        stack.broker.start()
        t_up = time.time()
        wait_for(lambda: outbox_count(stack) == 0, 40, what="the backlog to drain")
        t_drained = time.time()
        t_connected = log_ts(log_lines(stack, r"mqtt: connected to")[0])
        print(f"\nbacklog of {queued} messages; connected {t_connected - t_up:.1f} s after the "
              f"broker appeared; drained {t_drained - t_up:.1f} s after it")
        self.assertLess(t_connected - t_up, 8)  # backoff cap 5 s + jitter

        wait_for(lambda: any(s.get("state") == "online" for s in stack.sub.json_on("/status")),
                 10, what="status online")
        devices = [d for d in stack.control.call(cmd="list")["devices"]
                   if d.get("driver") != "notifier-gw"]
        meters = {d["id"] for d in devices}
        cycle_s = {d["id"]: CYCLE_S.get(d.get("endpoint"), 1.0) for d in devices}
        wait_for(lambda: all(any(parse_ts(r["ts"]) > t_up + 1 for r in stack.readings()
                                 if r["meter"] == m) for m in meters), 20,
                 what="live readings after the backlog")
        by_meter = {}
        for r in stack.readings():
            by_meter.setdefault(r["meter"], []).append(parse_ts(r["ts"]))
        self.assertEqual(set(by_meter), meters)
        # The restart's own pause (kill to the new core running), measured:
        # a loaded machine starts the new process more slowly.
        t_running = log_ts(log_lines(stack, r"core: running")[-1])
        restart_s = max(0.0, t_running - t_kill)
        for meter, ts in by_meter.items():
            self.assertLess(min(ts), t_start + 2.0 + cycle_s[meter],
                            f"{meter}: the first polls were delivered")
            # One poll cycle of its bus, plus the restart and its first-poll spread.
            self.assertLessEqual(largest_gap(ts), cycle_s[meter] + restart_s + 1.5,
                                 f"{meter}: hole in the backlog (restart took {restart_s:.1f} s)")
            order = first_arrivals(ts)
            self.assertEqual(order, sorted(order), f"{meter}: oldest first")


if __name__ == "__main__":
    unittest.main(verbosity=2)
