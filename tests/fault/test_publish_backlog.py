"""The broker falls behind while the connection stays up (SIGSTOP for a few
seconds at 1,200 readings/s): the publisher's ring fills, readings go to the
outbox, and when the broker resumes the gateway catches up and publishes
directly again. Every reading taken meanwhile arrives once, each meter's in
order, and nothing is reported dropped."""
import collections
import shutil
import signal
import tempfile
import time
import unittest

import test_pipeline
from faultlib import FaultCase, log_lines, outbox_count, parse_ts, wait_for

INTERVAL_MS = 100


class PublishBacklogTest(FaultCase):
    def test_broker_stall_fills_ring_then_gateway_catches_up(self):
        confdir = tempfile.mkdtemp(prefix="estate-backlog-")
        self.addCleanup(shutil.rmtree, confdir, True)
        gw_conf, sim_conf = test_pipeline.write_configs(confdir, INTERVAL_MS)
        stack = self.stack(gw_conf=gw_conf, sim_conf=sim_conf, endpoints=("pipe",)).start()
        meters = {m for m, *_ in test_pipeline.meter_rows()}
        wait_for(lambda: {r["meter"] for r in stack.readings()} >= meters, 15,
                 what="a reading from every meter")
        time.sleep(2)
        self.assertEqual(outbox_count(stack), 0)

        t_stop = time.time()
        stack.broker.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: (outbox_count(stack) or 0) > 0, 30,
                     what="readings in the outbox while the broker stalls")
            time.sleep(1)
        finally:
            stack.broker.proc.send_signal(signal.SIGCONT)
        t_cont = time.time()
        print(f"\nbroker stopped for {t_cont - t_stop:.1f} s")

        wait_for(lambda: outbox_count(stack) == 0, 30, what="the outbox to empty")
        t_empty = time.time()
        print(f"outbox empty {t_empty - t_cont:.1f} s after the broker resumed")
        time.sleep(1)
        start = time.time()
        time.sleep(3)
        end = time.time()
        # Direct publishing again: readings arrive at the polling rate.
        arrived = [m for ts, topic, m, _ in stack.sub.snapshot()
                   if start <= ts < end and topic.endswith("/reading")]
        rate = len(arrived) / (end - start)
        print(f"{rate:.0f} readings/s arriving afterwards")
        self.assertGreater(rate, len(meters) * 1000 / INTERVAL_MS * 0.8)

        # Every reading taken around the stall arrived once, in order per meter.
        seen = collections.Counter()
        last = {}
        for r in stack.readings():
            ts = parse_ts(r["ts"])
            if not (t_stop - 1 <= ts <= t_cont + 1):
                continue
            key = (r["meter"], r["ts"])
            seen[key] += 1
            self.assertGreater(ts, last.get(r["meter"], 0), f"{r['meter']} out of order")
            last[r["meter"]] = ts
        self.assertEqual([k for k, n in seen.items() if n > 1], [])
        per_meter = collections.Counter(m for m, _ in seen)
        expected = (t_cont - t_stop + 2) * 1000 / INTERVAL_MS
        self.assertEqual(set(per_meter), meters)
        self.assertGreater(min(per_meter.values()), expected * 0.7, per_meter.most_common()[-3:])
        self.assertEqual(log_lines(stack, "dropped"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
