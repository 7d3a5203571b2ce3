"""Issue 5, crash safety: a full disk degrades the gateway to publishing
without storing, loudly (one error line, not one per batch), and it recovers
by itself once space is freed; the database stays intact. The data
directory is a small tmpfs mounted for the test: it needs root (CI runs the
fault tests as root) and fails, never skips, when it cannot mount one."""
import os
import subprocess
import time
import unittest

from faultlib import FaultCase, integrity_check, log_lines, scalar, wait_for

SIZE = "6m"


class DiskFullTest(FaultCase):
    def mount_small_tmpfs(self, path):
        """Mounts a SIZE tmpfs on path, or fails the test saying why."""
        self.assertEqual(os.geteuid(), 0, "the disk-full test must run as root (it mounts a tmpfs)")
        try:
            res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs",
                                  path], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            self.fail("the disk-full test needs the mount program")
        self.assertEqual(res.returncode, 0, f"cannot mount a {SIZE} tmpfs on {path}: "
                                            f"{res.stderr.strip()}")

    def test_full_disk_publishes_without_storing_and_recovers(self):
        stack = self.stack()
        os.makedirs(stack.data_dir, exist_ok=True)
        self.mount_small_tmpfs(stack.data_dir)
        try:
            self.run_full_disk(stack)
        finally:
            # Before the stack removes its directory (tearDown).
            stack.gw.stop()
            subprocess.run(["umount", "-l", stack.data_dir], capture_output=True)

    def run_full_disk(self, stack):
        stack.start()
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM readings", default=0) > 50, 15,
                 what="readings stored")

        filler = os.path.join(stack.data_dir, "filler")
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        t_full = time.time()
        wait_for(lambda: log_lines(stack, r"store: writes failing"), 15,
                 what="the degraded-mode error")
        # Still publishing, and events still go out (directly).
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=6, state="alarm")
        wait_for(lambda: [a for a in stack.alerts(t_full) if a.get("rule") == "fire_alarm"], 10,
                 what="an alert while the disk is full")
        time.sleep(2)
        fresh = [r for r in stack.readings(time.time() - 1.5)]
        self.assertGreater(len(fresh), 20, "readings still published")
        self.assertTrue(stack.gw.alive())
        noisy = log_lines(stack, r" error ")
        self.assertLess(len(noisy), 20, "loud, but not once per batch:\n" + "\n".join(noisy[:30]))

        time.sleep(max(0.0, t_full + 6 - time.time()))  # past the first probe
        os.unlink(filler)
        t_free = time.time()
        wait_for(lambda: log_lines(stack, r"store: writes work again"), 15,
                 what="storing to resume")
        resumed = time.time() - t_free
        print(f"\nstoring resumed {resumed:.1f} s after space was freed")
        self.assertLess(resumed, 8.0, "probed every 5 s while degraded")
        before = scalar(stack, "SELECT count(*) FROM readings", default=0)
        wait_for(lambda: scalar(stack, "SELECT count(*) FROM readings", default=0) > before + 50,
                 10, what="readings stored again")
        self.assertEqual(stack.gw.stop(), 0)
        self.assertEqual(integrity_check(stack), "ok")


if __name__ == "__main__":
    unittest.main(verbosity=2)
