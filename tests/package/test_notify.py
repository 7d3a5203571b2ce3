#!/usr/bin/env python3
"""test_notify.py - estate-gw under a service manager: it speaks the notify
protocol (READY=1 once the core runs, WATCHDOG=1 from the core's ticks at a
third of WATCHDOG_USEC, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on
SIGTERM; a datagram socket stands in
for systemd's NOTIFY_SOCKET), and its log lines carry "<N>" priorities and no
timestamp when stderr is the journal (JOURNAL_STREAM names stderr's device
and inode). No broker is needed: the core ticks without one.

Usage: test_notify.py ESTATE_GW DEMO_CONFIG"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

EXE, CONFIG = sys.argv[1], sys.argv[2]
WATCHDOG_USEC = 600_000  # ping expected every 0.2 s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotifyTest(unittest.TestCase):
    def test_ready_watchdog_stopping(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            sock.settimeout(0.2)
            env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC=str(WATCHDOG_USEC))
            env.pop("WATCHDOG_PID", None)
            log = open(os.path.join(tmp, "gw.log"), "w")
            gw = subprocess.Popen(
                [EXE, "-c", CONFIG, "--set", f"gateway.data_dir={tmp}/data",
                 "--set", "mqtt.uri=tcp://127.0.0.1:1", "--set", f"http.listen=127.0.0.1:{free_port()}"],
                env=env, stdout=subprocess.DEVNULL, stderr=log)
            messages = []
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and messages.count("WATCHDOG=1") < 3:
                    try:
                        messages.extend(sock.recv(4096).decode().splitlines())
                    except socket.timeout:
                        self.assertIsNone(gw.poll(), "estate-gw exited early")
                ready_at = messages.index("READY=1") if "READY=1" in messages else -1
                self.assertGreaterEqual(ready_at, 0, f"no READY=1 in {messages}")
                self.assertGreaterEqual(messages.count("WATCHDOG=1"), 3, f"too few pings: {messages}")
                self.assertLess(ready_at, messages.index("WATCHDOG=1"), "a ping before READY=1")
                # SIGHUP: RELOADING=1 while the config is loaded and applied, then READY=1.
                gw.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and messages.count("READY=1") < 2:
                    try:
                        messages.extend(sock.recv(4096).decode().splitlines())
                    except socket.timeout:
                        self.assertIsNone(gw.poll(), "estate-gw exited on SIGHUP")
                self.assertIn("RELOADING=1", messages)
                reloading_at = messages.index("RELOADING=1")
                self.assertEqual(messages[reloading_at + 1:].count("READY=1"), 1, messages)
                gw.send_signal(signal.SIGTERM)
                self.assertEqual(gw.wait(timeout=15), 0)
                sock.settimeout(0)
                try:
                    while True:
                        messages.extend(sock.recv(4096).decode().splitlines())
                except BlockingIOError:
                    pass
                self.assertIn("STOPPING=1", messages)
                self.assertEqual(messages.count("READY=1"), 2)
            finally:
                if gw.poll() is None:
                    gw.kill()
                    gw.wait()
                sock.close()
                log.close()


class JournalFormatTest(unittest.TestCase):
    def run_gw(self, tmp, journal):
        log_path = os.path.join(tmp, "journal.log" if journal else "plain.log")
        with open(log_path, "w") as log:
            st = os.fstat(log.fileno())
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if journal:
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            gw = subprocess.Popen(
                [EXE, "-c", CONFIG, "--set", f"gateway.data_dir={tmp}/data",
                 "--set", "mqtt.uri=tcp://127.0.0.1:1", "--set", f"http.listen=127.0.0.1:{free_port()}"],
                env=env, stdout=subprocess.DEVNULL, stderr=log)
            time.sleep(1.5)
            gw.send_signal(signal.SIGTERM)
            self.assertEqual(gw.wait(timeout=15), 0)
        with open(log_path, encoding="utf-8") as f:
            return f.read().splitlines()

    def test_journal_lines_have_priorities_and_no_timestamps(self):
        with tempfile.TemporaryDirectory() as tmp:
            lines = self.run_gw(tmp, journal=True)
            self.assertTrue(any(l.startswith("<6>info estate-gw ") for l in lines), lines)
            for line in lines:
                self.assertRegex(line, r"^<[3467]>(error|warn|info|debug) ")

    def test_other_stderr_keeps_timestamps(self):
        with tempfile.TemporaryDirectory() as tmp:
            lines = self.run_gw(tmp, journal=False)
            self.assertTrue(lines)
            for line in lines:
                self.assertRegex(line, r"^\d{4}-\d{2}-\d{2}T\S+Z (error|warn|info|debug) ")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
