"""scripts/demo.sh as a person runs it: it refuses to start, with a message
naming the port and a non-zero exit, when one of its ports is taken; run
normally it shows the readings summary and the alerts as they come; Ctrl-C
(SIGINT) stops every program it started. While it runs, its /metrics passes
Debian's promtool check metrics.

SLOW: about 40 s. Run alone with
  ESTATE_BUILD_DIR=... python3 -m unittest -v test_demo_script
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import BUILD, ROOT, free_port, wait_for
from test_metrics import check_exposition, promtool_check_metrics

DEMO = os.path.join(ROOT, "scripts", "demo.sh")


def demo_env():
    """Free ports for everything the demo opens, the tests' build dir, no set-up."""
    env = dict(os.environ)
    env.update({
        "ESTATE_BUILD_DIR": BUILD,
        "ESTATE_DEMO_NO_SETUP": "1",
        "ESTATE_DEMO_MQTT_PORT": str(free_port()),
        "ESTATE_DEMO_HTTP_PORT": str(free_port()),
        "ESTATE_DEMO_GW_A_PORT": str(free_port()),
        "ESTATE_DEMO_GW_B_PORT": str(free_port()),
        "ESTATE_DEMO_FIRE_PORT": str(free_port()),
        "ESTATE_DEMO_CONTROL_PORT": str(free_port()),
    })
    return env


def pid_alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def processes_mentioning(text):
    """Pids of processes whose command line contains text."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read() and pid_alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def demo_metrics(http_port):
    """The demo gateway's /metrics as its demo viewer account sees it."""
    base = f"http://127.0.0.1:{http_port}"
    login = urllib.request.Request(base + "/api/login", method="POST",
                                   data=b'{"user": "viewer", "password": "view123"}',
                                   headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login, timeout=15) as resp:
        token = json.loads(resp.read())["token"]
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=15) as resp:
        return resp.read().decode()


class Output:
    """Collects a process's stdout+stderr lines in a thread."""

    def __init__(self, proc):
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def text(self):
        with self.lock:
            return "\n".join(self.lines)

    def matching(self, pattern):
        with self.lock:
            return [l for l in self.lines if re.search(pattern, l)]


class DemoScriptTest(unittest.TestCase):
    def test_taken_http_port_stops_it_at_once_with_a_clear_message(self):
        env = demo_env()
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", int(env["ESTATE_DEMO_HTTP_PORT"])))
            holder.listen()
            t0 = time.time()
            res = subprocess.run([DEMO, "--duration", "20"], env=env, capture_output=True,
                                 text=True, timeout=30)
            took = time.time() - t0
        self.assertNotEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertLess(took, 10, "the demo should refuse before starting anything")
        port = env["ESTATE_DEMO_HTTP_PORT"]
        self.assertRegex(res.stderr, rf"port {port}\b.*in use.*ESTATE_DEMO_HTTP_PORT")
        self.assertNotIn("estate-gw demo", res.stdout, "nothing should have been started")

    def test_gateway_dying_at_start_shows_the_error_from_its_log(self):
        """A build dir whose estate-gw fails at once (a stand-in script that
        writes its error to its log only): the demo says which program died
        with the first error line of its log, exits non-zero and leaves
        nothing of its run running."""
        build = tempfile.mkdtemp(prefix="estate-demo-build-")
        try:
            os.makedirs(os.path.join(build, "gateway"))
            os.makedirs(os.path.join(build, "firmware-sim"))
            os.symlink(os.path.join(BUILD, "firmware-sim", "estate-sim"),
                       os.path.join(build, "firmware-sim", "estate-sim"))
            fake_gw = os.path.join(build, "gateway", "estate-gw")
            with open(fake_gw, "w") as f:
                f.write("#!/bin/sh\necho 'estate-gw starting'\n"
                        "echo 'error: cannot open /nonexistent/gw: No such file or directory' >&2\n"
                        "exit 3\n")
            os.chmod(fake_gw, 0o755)
            env = demo_env()
            env["ESTATE_BUILD_DIR"] = build
            res = subprocess.run([DEMO, "--duration", "20"], env=env, capture_output=True,
                                 text=True, timeout=60)
            self.assertNotEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertRegex(res.stderr, r"estate-gw exited \(status 3\); its log \S+gw\.log says: "
                                         r"error: cannot open /nonexistent/gw")
            run_dir = re.search(r"logs and data in (\S+)", res.stdout + res.stderr).group(1)
            self.assertEqual(processes_mentioning(run_dir), [],
                             f"processes of run {run_dir} left running")
            sim_port = env["ESTATE_DEMO_GW_A_PORT"]
            self.assertEqual(processes_mentioning(f"127.0.0.1:{sim_port}"), [],
                             "the simulator was left running")
        finally:
            shutil.rmtree(build, ignore_errors=True)

    def test_runs_shows_summary_and_alerts_and_sigint_stops_every_child(self):
        """The scenario's first alerts come about 20 s after the simulator
        starts (fire_disabled, vacant_flow), so --duration 40 leaves room to
        send SIGINT before the demo would stop by itself."""
        env = demo_env()
        proc = subprocess.Popen([DEMO, "--duration", "40"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        out = Output(proc)
        pids = {}
        run_dir = None
        try:
            wait_for(lambda: out.matching(r"^\s*pids:"), 20, what="the pids line")
            pids = {name: int(pid) for name, pid in
                    re.findall(r"([\w-]+)=(\d+)", out.matching(r"^\s*pids:")[0])}
            self.assertEqual(set(pids), {"estate-gw", "estate-sim", "mosquitto", "screen"})
            run_dir = re.search(r"run dir:\s+(\S+)", out.text()).group(1)
            self.assertTrue(os.path.isdir(run_dir))
            for name, pid in pids.items():
                self.assertTrue(pid_alive(pid), f"{name} (pid {pid}) not running")
            wait_for(lambda: out.matching(r"readings: \d+ meters seen; last 5 s: \d+ good"), 20,
                     what="a readings summary line")
            summary = out.matching(r"readings: (\d+) meters seen")[-1]
            self.assertGreater(int(re.search(r"(\d+) meters seen", summary).group(1)), 0)
            wait_for(lambda: out.matching(r"^\d\d:\d\d:\d\d  alert raised "), 30,
                     what="an alert line")
            text = demo_metrics(env["ESTATE_DEMO_HTTP_PORT"])
            promtool_check_metrics(text)
            samples = check_exposition(text)
            self.assertGreater(samples[("estate_bus_polls_total", '{bus="gw_a"}')], 0)
            self.assertIsNone(proc.poll(), "the demo stopped before SIGINT:\n" + out.text())
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
            out.thread.join(5)
            self.assertNotEqual(code, 0)
            self.assertIn("demo stopped", out.text())
            for name, pid in pids.items():
                self.assertFalse(pid_alive(pid), f"{name} (pid {pid}) left running")
            self.assertEqual(processes_mentioning(run_dir), [],
                             f"processes of run {run_dir} left running")
            offline = out.matching(r"gateway offline")
            self.assertTrue(offline, "the gateway was not stopped before the broker:\n" + out.text())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stdout.close()
            for pid in pids.values():
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    unittest.main()
