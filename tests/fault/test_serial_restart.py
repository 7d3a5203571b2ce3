"""A gateway restarted (SIGTERM, then SIGKILL) reads its serial buses again:
the demo's building 3 meters on DL/T 645 and CJ/T 188 pseudo-terminals
(8E1) answer the new process within a few polls. A pty keeps its own parity
flag, and glibc's tcsetattr reports EINVAL when PARENB does not take: the
restarted gateway used to refuse the line for good."""
import signal
import time
import unittest

from faultlib import FaultCase, parse_ts, wait_for

NATIONAL = ("E-3-101", "W-3-101")


class SerialRestartTest(FaultCase):
    def fresh(self, stack, since):
        return {r["meter"] for r in stack.readings()
                if r["meter"] in NATIONAL and r.get("quality") == "good" and parse_ts(r["ts"]) > since}

    def test_restarted_gateway_reads_its_serial_buses(self):
        stack = self.stack().start()
        wait_for(lambda: self.fresh(stack, 0) >= set(NATIONAL), 40,
                 what="building 3 readings from the first gateway")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            stack.restart_gw(sig)
            restarted = time.time()
            wait_for(lambda: self.fresh(stack, restarted) >= set(NATIONAL), 40,
                     what=f"building 3 readings after a restart by {signal.Signals(sig).name}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
