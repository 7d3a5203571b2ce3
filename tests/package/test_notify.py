#!/usr/bin/env python3
"""test_notify.py - estate-gw speaks the service manager's notify protocol:
READY=1 once the core runs, WATCHDOG=1 from the core's ticks at a third of
WATCHDOG_USEC, STOPPING=1 on SIGTERM. A datagram socket stands in for
systemd's NOTIFY_SOCKET; no broker is needed (the core ticks without one).

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
            gw = subprocess.Popen(
                [EXE, "-c", CONFIG, "--set", f"gateway.data_dir={tmp}/data",
                 "--set", "mqtt.uri=tcp://127.0.0.1:1", "--set", f"http.listen=127.0.0.1:{free_port()}"],
                env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "gw.log"), "w"))
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
                gw.send_signal(signal.SIGTERM)
                self.assertEqual(gw.wait(timeout=15), 0)
                sock.settimeout(0)
                try:
                    while True:
                        messages.extend(sock.recv(4096).decode().splitlines())
                except BlockingIOError:
                    pass
                self.assertIn("STOPPING=1", messages)
                self.assertEqual(messages.count("READY=1"), 1)
            finally:
                if gw.poll() is None:
                    gw.kill()
                    gw.wait()
                sock.close()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
