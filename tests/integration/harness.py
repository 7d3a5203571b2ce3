"""harness.py - starts a real mosquitto broker, estate-sim and estate-gw on
free loopback ports for integration and fault tests, subscribes to the
gateway's topics and talks to the simulator's control port. Every process it
starts is stopped when the stack is closed (also on test failure)."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

ROOT = os.environ.get("ESTATE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ESTATE_BUILD_DIR") or os.path.join(ROOT, "build")
DEMO_GW = os.path.join(ROOT, "etc", "demo", "estate-gw.conf")
DEMO_SIM = os.path.join(ROOT, "etc", "demo", "estate-sim.conf")
DEMO_TTYS = ("b3_elec", "b3_water")  # the demo's rtu endpoints and buses (pseudo-terminals)
DEMO_ENDPOINTS = ("gw_a", "gw_b", "fire")


def binary(name):
    for sub in ("gateway", "firmware-sim"):
        path = os.path.join(BUILD, sub, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{name} not built under {BUILD}")


def _names_buses(conf, names):
    """Whether the config file defines every bus of names (the demo's
    pseudo-terminal buses), so their devices can be pointed at this run's."""
    try:
        with open(conf, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    return all(f'name = "{n}"' in text for n in names)


_given_ports = set()  # never hand out the same port twice in one process


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A free loopback port below the kernel's ephemeral range: a service
    restarted on it (broker, simulator) can always bind it again. A port from
    the ephemeral range may meanwhile become the local end of some client's
    connection - even a self-connection of a client retrying that very port -
    and the restart then fails with EADDRINUSE."""
    low = _ephemeral_low()
    rng = random.Random(os.getpid() ^ time.time_ns())
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _given_ports:
            continue
        _given_ports.add(port)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_port(port, timeout=10):
    def is_open():
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(is_open, timeout, what=f"port {port}")


class Broker:
    """persistent: sessions and queued messages (QoS 1, and QoS 0 too)
    survive a restart (a subscriber with clean_session=False then misses
    nothing the gateway sends while it reconnects), with no cap on the queue."""

    def __init__(self, workdir, port=None, extra_conf="", persistent=False):
        self.port = port or free_port()
        self.conf = os.path.join(workdir, f"mosquitto-{self.port}.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
            if os.geteuid() == 0 and "\nuser " not in "\n" + extra_conf:
                # Started as root, mosquitto drops to the "mosquitto" user, which
                # may not write its persistence file in the test's 0700 folder.
                f.write("user root\n")
            if persistent:
                # queue_qos0_messages: readings (QoS 0) published while the
                # subscriber reconnects are kept for its session too; without
                # it a test sees a hole the gateway did not make.
                f.write(f"persistence true\npersistence_location {workdir}/\n"
                        f"persistence_file mosquitto-{self.port}.db\n"
                        "max_queued_messages 0\nmax_inflight_messages 0\n"
                        "queue_qos0_messages true\n")
            else:
                f.write("persistence false\n")
            f.write(extra_conf)
        self.proc = None
        self.log = open(os.path.join(workdir, f"mosquitto-{self.port}.log"), "a")

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Subscriber:
    """Collects every message under a topic filter."""

    def __init__(self, port, topic="#", clean_session=True):
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=f"test-{os.getpid()}-{time.time_ns()}",
                                  clean_session=clean_session)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
        # Reconnect quickly after a broker restart (fault tests).
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((time.time(), msg.topic, msg.payload, msg.retain))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def json_on(self, suffix, since=0.0):
        out = []
        for ts, topic, payload, retain in self.snapshot():
            if ts >= since and topic.endswith(suffix) and payload:
                try:
                    out.append(json.loads(payload))
                except ValueError:
                    pass
        return out

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def sanitizer_reports(workdir):
    """Lines of ASan/UBSan/LSan reports in the logs of the processes a test
    started: under the sanitizer build they must fail the test even when the
    daemon kept running."""
    found = []
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else ():
        if not name.endswith(".log"):
            continue
        with open(os.path.join(workdir, name), errors="replace") as f:
            for line in f:
                if any(marker in line for marker in SANITIZER_MARKERS):
                    found.append(f"{name}: {line.rstrip()}")
    return found[:20]


class Process:
    def __init__(self, argv, log_path):
        self.argv = argv
        self.log_path = log_path
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        self.log.close()
        return code

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class SimControl:
    def __init__(self, port):
        self.port = port

    def call(self, **request):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall((json.dumps(request) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data)
        if not reply.get("ok"):
            raise RuntimeError(f"simulator refused {request}: {reply}")
        return reply


class Stack:
    """Broker + simulator + gateway on free ports, from the demo configs
    unless others are given."""

    def __init__(self, gw_conf=DEMO_GW, sim_conf=DEMO_SIM, endpoints=DEMO_ENDPOINTS,
                 gw_sets=(), sim_sets=(), scenario=False, persistent_broker=False,
                 broker_conf=""):
        self.workdir = tempfile.mkdtemp(prefix="estate-test-")
        self.gw_conf, self.sim_conf = gw_conf, sim_conf
        self.persistent_broker = persistent_broker
        self.broker = Broker(self.workdir, extra_conf=broker_conf, persistent=persistent_broker)
        self.control_port = free_port()
        self.http_port = free_port()
        self.ports = {name: free_port() for name in endpoints}
        self.data_dir = os.path.join(self.workdir, "gw")
        self.prefix = "estate/test/gw1"
        sets = [f"sim.control=127.0.0.1:{self.control_port}"]
        sets += [f"endpoints.{n}.listen=127.0.0.1:{p}" for n, p in self.ports.items()]
        # the demo's building 3 speaks DL/T 645 and CJ/T 188 on pseudo-terminals: links of this run
        self.demo_ttys = {n: os.path.join(self.workdir, "tty", n) for n in DEMO_TTYS}
        if sim_conf == DEMO_SIM:
            sets += [f"endpoints.{n}.link={link}" for n, link in self.demo_ttys.items()]
        if not scenario:
            sets.append("sim.scenario=false")
        sets += list(sim_sets)
        self.sim = Process([binary("estate-sim"), "-c", sim_conf] +
                           [a for s in sets for a in ("--set", s)],
                           os.path.join(self.workdir, "sim.log"))
        gsets = [f"mqtt.uri=tcp://127.0.0.1:{self.broker.port}",
                 f"gateway.data_dir={self.data_dir}",
                 "gateway.site=test", "gateway.id=gw1",
                 f"mqtt.topic_prefix={self.prefix}",
                 f"http.listen=127.0.0.1:{self.http_port}"]
        gsets += [f"buses.{n}.port={p}" for n, p in self.ports.items()]
        if sim_conf == DEMO_SIM and _names_buses(gw_conf, DEMO_TTYS):
            # also a test's copy of the demo config (e.g. with a notify section)
            gsets += [f"buses.{n}.device={link}" for n, link in self.demo_ttys.items()]
        gsets += list(gw_sets)
        self.gw_argv = [binary("estate-gw"), "-c", gw_conf] + [a for s in gsets for a in ("--set", s)]
        self.gw = Process(self.gw_argv, os.path.join(self.workdir, "gw.log"))
        self.control = SimControl(self.control_port)
        self.sub = None

    def start(self, broker=True, sim=True, gw=True):
        if broker:
            self.broker.start()
            self.sub = Subscriber(self.broker.port, self.prefix + "/#",
                                  clean_session=not self.persistent_broker)
        if sim:
            self.sim.start()
            wait_port(self.control_port)
            for p in self.ports.values():
                wait_port(p)
        if gw:
            self.gw.start()
        return self

    def restart_gw(self, sig=signal.SIGTERM):
        code = self.gw.stop(sig)
        self.gw = Process(self.gw_argv, os.path.join(self.workdir, "gw.log"))
        self.gw.start()
        return code

    def ctl(self, *args, check=True):
        sets = [f"gateway.data_dir={self.data_dir}", "gateway.site=test", "gateway.id=gw1"]
        argv = [binary("estate-ctl"), "-c", self.gw_conf] + \
            [a for s in sets for a in ("--set", s)] + list(args)
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"estate-ctl {' '.join(args)} failed ({res.returncode}): "
                                 f"{res.stderr}{res.stdout}")
        return res

    def readings(self, since=0.0):
        return self.sub.json_on("/reading", since)

    def alerts(self, since=0.0):
        return [m for m in self.sub.json_on("/alerts", since)]

    def close(self):
        if self.sub:
            self.sub.close()
        self.gw.stop()
        self.sim.stop()
        self.broker.stop()
        reports = sanitizer_reports(self.workdir)
        if os.environ.get("ESTATE_KEEP_TEST_DIRS") or reports:
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer report in a daemon's log:\n" + "\n".join(reports))

    def dump_logs(self):
        for name in ("gw.log", "sim.log"):
            path = os.path.join(self.workdir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    tail = f.read()[-6000:]
                print(f"---- {name} ----\n{tail}")
