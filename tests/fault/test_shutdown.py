"""Issue 5 / SPEC: SIGTERM stops the gateway quickly and cleanly (exit 0,
status "offline" published retained); a SIGKILL leaves "offline" through
the broker's Last Will; a restart after either comes back online."""
import json
import signal
import time
import unittest

from faultlib import FaultCase, Subscriber, log_lines, outbox_count, wait_for


class ShutdownTest(FaultCase):
    def retained_status(self, stack):
        """What a client connecting now gets on P/status (the retained
        message), or {} when there is none."""
        sub = Subscriber(stack.broker.port, f"{stack.prefix}/status")
        try:
            deadline = time.time() + 1.5
            while time.time() < deadline:
                msgs = [m for m in sub.snapshot() if m[3]]
                if msgs:
                    return json.loads(msgs[-1][2])
                time.sleep(0.05)
            return {}
        finally:
            sub.close()

    def wait_state(self, stack, state, timeout=15):
        wait_for(lambda: self.retained_status(stack).get("state") == state, timeout,
                 what=f"retained status {state}")

    def wait_online(self, stack):
        self.wait_state(stack, "online")

    def test_sigterm_publishes_offline_and_exits_0_quickly(self):
        stack = self.stack().start()
        self.wait_online(stack)
        wait_for(lambda: len(stack.readings()) > 50, 10, what="readings")
        t0 = time.time()
        code = stack.gw.stop(signal.SIGTERM, timeout=10)
        took = time.time() - t0
        print(f"\nSIGTERM: exit {code} after {took:.2f} s")
        self.assertEqual(code, 0)
        self.assertLess(took, 4.0)
        status = self.retained_status(stack)
        self.assertEqual(status["state"], "offline")
        self.assertIn("version", status)
        self.assertEqual(outbox_count(stack), 0, "the outbox was flushed")
        self.assertTrue(log_lines(stack, r"core: stopped"))

    def test_sigterm_while_broker_down_keeps_the_outbox(self):
        stack = self.stack(persistent_broker=True).start()
        self.wait_online(stack)
        stack.broker.stop()
        time.sleep(3)
        t0 = time.time()
        code = stack.gw.stop(signal.SIGTERM, timeout=10)
        took = time.time() - t0
        queued = outbox_count(stack)
        print(f"\nSIGTERM without a broker: exit {code} after {took:.2f} s, {queued} queued")
        self.assertEqual(code, 0)
        self.assertLess(took, 4.0)
        self.assertGreater(queued, 28, "what could not be sent stays queued")
        stack.broker.start()
        stack.restart_gw()
        wait_for(lambda: outbox_count(stack) == 0, 20, what="the queue sent by the next run")

    def test_sigkill_leaves_offline_through_last_will_then_restart(self):
        stack = self.stack().start()
        self.wait_online(stack)
        t0 = time.time()
        stack.gw.stop(signal.SIGKILL)
        self.wait_state(stack, "offline", 10)
        print(f"\nLast Will seen {time.time() - t0:.2f} s after SIGKILL")
        stack.restart_gw()
        self.wait_online(stack)


if __name__ == "__main__":
    unittest.main(verbosity=2)
