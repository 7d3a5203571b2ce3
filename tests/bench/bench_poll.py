#!/usr/bin/python3
"""bench_poll.py - the poll benchmark (issue 2): mosquitto, estate-sim
--generate N and estate-gw on free loopback ports, the gateway polling every
generated meter over Modbus TCP, decoding, running the rules, storing in
SQLite and publishing over MQTT. It prints one row per run: meters,
endpoints, offered and achieved readings/s, the gateway's CPU microseconds
per reading, its peak RSS, and the CPU share of the simulator, the broker
and the light subscriber that consumes the readings.

Figures only: nothing here passes or fails on time (it is not part of
ctest). Run it by hand on an otherwise idle machine; see docs/benchmarks.md.

    /usr/bin/python3 tests/bench/bench_poll.py --build /tmp/build-bench
    /usr/bin/python3 tests/bench/bench_poll.py --build /tmp/build-bench --quick
    /usr/bin/python3 tests/bench/bench_poll.py --run 10000:500 --duration 30

How it counts:
- readings processed: rows added to the readings table of the gateway's
  SQLite database during the measuring window (read from max(rowid), so
  the count costs nothing on the gateway's side); the authoritative figure;
- readings published: messages a mosquitto_sub on P/meters/+/reading
  received in the same window (it writes one byte per message to a file);
- CPU: utime+stime from /proc/<pid>/stat of each process at the start and
  end of the window (all threads); gateway CPU us/reading = gateway CPU
  time / readings stored; a share is CPU time / wall time (100% = 1 core);
- peak RSS: VmHWM of /proc/<gateway pid>/status at the end of the run;
- core thread %: the gateway's main thread (rules, SQLite, publishing);
  near 100% it is the bottleneck;
- other CPU %: the rest of the machine's busy time in the window (other
  programs, this script); figures taken while it is high are not clean.
A share is of one core: the machine has os.cpu_count() x 100%.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402  (Broker, free_port, wait_port, wait_for)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PREFIX = "estate/bench/gw1"
MAX_SLAVES = 247


def find_binary(build, name):
    for sub in ("gateway", "firmware-sim", "tests/bench"):
        path = os.path.join(build, sub, name)
        if os.path.exists(path):
            return path
    sys.exit(f"bench_poll: {name} not built under {build} (use --build DIR)")


def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def thread_cpu_seconds(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


def machine_busy_seconds():
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def consecutive_free_ports(count):
    """A run of count consecutive free loopback ports (checked by binding)."""
    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    sys.exit("bench_poll: no run of free ports found")


def endpoints_for(meters, endpoints):
    """The simulator's rule: max(K, ceil(N / 247)) endpoints."""
    return max(endpoints, -(-meters // MAX_SLAVES))


def write_gateway_config(workdir, meters, nendpoints, base_port, interval_ms, driver,
                         mqtt_port, http_port, timeout_ms, pipeline_depth):
    """One tcp bus per simulator endpoint, meters M00001.. as the simulator
    generates them (meter i on endpoint i % E, slave i / E + 1, serial
    30000001 + i), in a meters CSV."""
    csv_path = os.path.join(workdir, "meters.csv")
    with open(csv_path, "w") as f:
        f.write("id,bus,slave,driver,kind,category,serial\n")
        for i in range(meters):
            f.write(f"M{i + 1:05d},gen{i % nendpoints},{i // nendpoints + 1},{driver},"
                    f"electricity,unit,{30000001 + i}\n")
    conf = os.path.join(workdir, "estate-gw.conf")
    with open(conf, "w") as f:
        f.write(f"""# generated by tests/bench/bench_poll.py
gateway = {{ id = "gw1"; site = "bench"; data_dir = "{workdir}/gw"; log_level = "warn"; language = "en"; }};
mqtt = {{ uri = "tcp://127.0.0.1:{mqtt_port}"; topic_prefix = "{PREFIX}"; qos_readings = 0; qos_events = 1; }};
http = {{ listen = "127.0.0.1:{http_port}"; }};
buses = (
""")
        rows = []
        for e in range(nendpoints):
            rows.append(f'  {{ name = "gen{e}"; type = "tcp"; host = "127.0.0.1"; port = {base_port + e};'
                        f' timeout_ms = {timeout_ms}; retries = 0; poll_interval_ms = {interval_ms};'
                        f' pipeline_depth = {pipeline_depth}; }}')
        f.write(",\n".join(rows))
        f.write(f'\n);\nmeters_csv = "{csv_path}";\n')
    return conf


class Proc:
    """A child process with its log in the work directory."""

    def __init__(self, argv, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def stored_rows(db_path):
    """Rows ever inserted into readings (max rowid: an index lookup)."""
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT coalesce(max(rowid), 0) FROM readings").fetchone()
            return row[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def quality_counts(db_path, first_rowid, last_rowid):
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT quality, count(*) FROM readings WHERE rowid > ? AND rowid <= ?"
                           " GROUP BY quality", (first_rowid, last_rowid)).fetchall()
    finally:
        con.close()
    names = {0: "good", 1: "stale", 2: "error"}
    return {names.get(q, str(q)): n for q, n in rows}


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def start_simulator(args, meters, nendpoints, workdir):
    """estate-sim --generate on consecutive free ports, once all of them
    listen; returns (Proc, first port)."""
    base_port = consecutive_free_ports(nendpoints)
    control_port = harness.free_port()
    sim = Proc([find_binary(args.build, "estate-sim"), "--generate", str(meters),
                "--endpoints", str(args.endpoints), "--base-port", str(base_port),
                "--driver", args.driver, "--set", f"sim.control=127.0.0.1:{control_port}"],
               os.path.join(workdir, "sim.log"))
    try:
        harness.wait_port(control_port, 30)
        for p in range(base_port, base_port + nendpoints):
            harness.wait_port(p, 30)
    except Exception:
        sim.stop()
        raise
    return sim, base_port


def run_one(args, meters, interval_ms):
    nendpoints = endpoints_for(meters, args.endpoints)
    workdir = tempfile.mkdtemp(prefix="estate-bench-")
    procs = []
    broker = None
    try:
        broker = harness.Broker(workdir)
        broker.start()
        sim, base_port = start_simulator(args, meters, nendpoints, workdir)
        procs.append(sim)

        # The light subscriber: one byte per reading into a file.
        sub_out = os.path.join(workdir, "sub.out")
        sub_file = open(sub_out, "wb")
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                                "-t", f"{PREFIX}/meters/+/reading", "-q", "0", "-N", "-F", "."],
                               stdout=sub_file, stderr=subprocess.DEVNULL)
        conf = write_gateway_config(workdir, meters, nendpoints, base_port, interval_ms, args.driver,
                                    broker.port, harness.free_port(), args.timeout_ms,
                                    args.pipeline)
        gw = Proc(args.gw_prefix.split() + [find_binary(args.build, "estate-gw"), "-c", conf],
                  os.path.join(workdir, "gw.log"))
        procs.append(gw)
        db = os.path.join(workdir, "gw", "estate.db")
        harness.wait_for(lambda: not gw.alive() or stored_rows(db) > 0, 60, 0.2,
                         "the gateway's first stored readings")
        if not gw.alive():
            raise RuntimeError(f"estate-gw exited with {gw.proc.returncode}; see {workdir}/gw.log")
        time.sleep(args.warmup)

        pids = {"gw": gw.pid, "sim": sim.pid, "broker": broker.proc.pid, "sub": sub.pid}
        t0 = time.monotonic()
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        core0 = thread_cpu_seconds(gw.pid, gw.pid)  # the main thread is the core thread
        busy0 = machine_busy_seconds()
        rows0 = stored_rows(db)
        pub0 = file_size(sub_out)
        time.sleep(args.duration)
        t1 = time.monotonic()
        cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
        core1 = thread_cpu_seconds(gw.pid, gw.pid)
        busy1 = machine_busy_seconds()
        rows1 = stored_rows(db)
        pub1 = file_size(sub_out)
        hwm_kb = status_kb(gw.pid, "VmHWM")
        rss_kb = status_kb(gw.pid, "VmRSS")
        threads = status_kb(gw.pid, "Threads")
        if args.perf and not args.perf_done:
            args.perf_done = True
            perf_out = os.path.abspath(args.perf)
            print(f"  perf record (dwarf call graphs) -p {gw.pid} for 10 s -> {perf_out}",
                  file=sys.stderr)
            subprocess.run(["perf", "record", "--call-graph", "dwarf,16384", "-F", "499",
                            "-o", perf_out, "-p", str(gw.pid), "--", "sleep", "10"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        code = gw.stop()
        sub.send_signal(signal.SIGTERM)
        sub.wait(5)
        sub_file.close()

        wall = t1 - t0
        stored = rows1 - rows0
        quality = quality_counts(db, rows0, rows1)
        cpu = {k: cpu1[k] - cpu0[k] for k in pids}
        result = {
            "meters": meters, "endpoints": nendpoints, "interval_ms": interval_ms,
            "offered": meters * 1000.0 / interval_ms,
            "achieved": stored / wall,
            "published": (pub1 - pub0) / wall,
            "good_pct": 100.0 * quality.get("good", 0) / stored if stored else 0.0,
            "gw_us": cpu["gw"] * 1e6 / stored if stored else float("nan"),
            "gw_share": 100.0 * cpu["gw"] / wall,
            "hwm_mb": hwm_kb / 1024.0, "rss_mb": rss_kb / 1024.0, "threads": threads,
            "sim_share": 100.0 * cpu["sim"] / wall,
            "broker_share": 100.0 * cpu["broker"] / wall,
            "sub_share": 100.0 * cpu["sub"] / wall,
            "core_share": 100.0 * (core1 - core0) / wall,
            # everything else on the machine (other users, this script)
            "other_share": 100.0 * max(0.0, (busy1 - busy0) - sum(cpu.values())) / wall,
            "exit": code, "workdir": workdir,
        }
        return result
    finally:
        for p in reversed(procs):
            p.stop()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"  kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_modbus_only(args, meters, interval_ms):
    """The same simulator set-up polled by bench_modbus (libmodbus alone)."""
    nendpoints = endpoints_for(meters, args.endpoints)
    workdir = tempfile.mkdtemp(prefix="estate-bench-")
    sim = None
    try:
        sim, base_port = start_simulator(args, meters, nendpoints, workdir)
        function, address, count = (int(x) for x in args.modbus_request.split(":"))
        sim0 = cpu_seconds(sim.pid)
        out = subprocess.run([find_binary(args.build, "bench_modbus"), str(base_port), str(nendpoints),
                              str(meters), str(interval_ms), str(args.duration), str(function),
                              str(address), str(count), str(args.pipeline)],
                             check=True, capture_output=True, text=True).stdout
        sim_cpu = cpu_seconds(sim.pid) - sim0
        r = json.loads(out)
        return {"meters": meters, "endpoints": nendpoints, "interval_ms": interval_ms,
                "offered": meters * 1000.0 / interval_ms, "tx_per_s": r["tx_per_s"],
                "failures": r["failures"], "cpu_us_per_tx": r["cpu_us_per_tx"],
                "cpu_percent": r["cpu_percent"],
                # the simulator ran through the 2 s warm-up too
                "sim_share": 100.0 * sim_cpu / (r["seconds"] + 2.0)}
    finally:
        if sim is not None:
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


MODBUS_HEADER = ("| meters | endpoints | interval ms | offered tx/s | achieved tx/s | failed | "
                 "client CPU us/tx | client CPU % | sim CPU % |")


def modbus_row(r):
    return (f"| {r['meters']} | {r['endpoints']} | {r['interval_ms']} | {r['offered']:.0f} | "
            f"{r['tx_per_s']:.0f} | {r['failures']} | {r['cpu_us_per_tx']:.1f} | "
            f"{r['cpu_percent']:.0f} | {r['sim_share']:.0f} |")


HEADER = ("| meters | endpoints | interval ms | offered rd/s | achieved rd/s | published rd/s | good % "
          "| gw CPU us/rd | gw CPU % | core thread % | peak RSS MB | gw threads | sim CPU % "
          "| broker CPU % | sub CPU % | other CPU % |")
RULE = "|" + "---|" * (HEADER.count("|") - 1)


def row(r):
    return (f"| {r['meters']} | {r['endpoints']} | {r['interval_ms']} | {r['offered']:.0f} | "
            f"{r['achieved']:.0f} | {r['published']:.0f} | {r['good_pct']:.1f} | {r['gw_us']:.1f} | "
            f"{r['gw_share']:.0f} | {r['core_share']:.0f} | {r['hwm_mb']:.1f} | {r['threads']} | "
            f"{r['sim_share']:.0f} | {r['broker_share']:.0f} | {r['sub_share']:.0f} | "
            f"{r['other_share']:.0f} |")


def parse_run(text):
    meters, _, interval = text.partition(":")
    return int(meters), int(interval or 1000)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("ESTATE_BUILD_DIR", os.path.join(root, "build")),
                    help="build directory holding gateway/estate-gw and firmware-sim/estate-sim")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 meters for 5 s")
    ap.add_argument("--run", action="append", metavar="METERS[:INTERVAL_MS]",
                    help="one run (repeatable); default: 1000:1000 1000:100 10000:1000 10000:500 10000:100")
    ap.add_argument("--endpoints", type=int, default=8, help="simulator endpoints asked for (default 8)")
    ap.add_argument("--driver", default="sdm120", help="meter model (default sdm120)")
    ap.add_argument("--duration", type=float, default=20.0, help="measuring window, s (default 20)")
    ap.add_argument("--warmup", type=float, default=5.0, help="after the first stored reading, s (default 5)")
    ap.add_argument("--timeout-ms", type=int, default=1000, help="buses' Modbus timeout (default 1000)")
    ap.add_argument("--perf", metavar="FILE", help="after the first run's window, perf record the gateway for 10 s "
                    "(use a RelWithDebInfo build for symbols)")
    ap.add_argument("--keep", action="store_true", help="keep the work directories (logs, database)")
    ap.add_argument("--modbus-only", action="store_true",
                    help="the floor: poll the same simulator set-up with bench_modbus (libmodbus "
                         "alone, one thread per endpoint, same pattern) instead of the gateway")
    ap.add_argument("--modbus-request", default="4:0:76", metavar="FC:ADDRESS:COUNT",
                    help="what bench_modbus reads per poll (default 4:0:76, the SDM120's fast request)")
    ap.add_argument("--pipeline", type=int, default=1, metavar="DEPTH",
                    help="the buses' pipeline_depth: reads in flight per endpoint (default 1)")
    ap.add_argument("--gw-prefix", default="", metavar="CMD",
                    help="run the gateway under CMD, e.g. 'heaptrack' (its figures then include CMD)")
    args = ap.parse_args()
    args.perf_done = False
    if args.quick:
        runs = [(1000, 1000)]
        args.duration, args.warmup = 5.0, 2.0
    elif args.run:
        runs = [parse_run(r) for r in args.run]
    else:
        runs = [(1000, 1000), (1000, 100), (10000, 1000), (10000, 500), (10000, 100)]
    for tool in ("mosquitto", "mosquitto_sub"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_poll: {tool} not found (apt-get install mosquitto mosquitto-clients)")
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    print(f"# estate-gw poll benchmark: {os.cpu_count()} CPUs ({model}); driver {args.driver}; "
          f"window {args.duration:g} s after {args.warmup:g} s warm-up; build {args.build}")
    if args.modbus_only:
        print(f"# libmodbus alone (bench_modbus), request {args.modbus_request}")
        print(MODBUS_HEADER)
        print("|" + "---|" * (MODBUS_HEADER.count("|") - 1))
        for meters, interval in runs:
            print(modbus_row(run_modbus_only(args, meters, interval)))
            sys.stdout.flush()
        return
    print(HEADER)
    print(RULE)
    sys.stdout.flush()
    for meters, interval in runs:
        r = run_one(args, meters, interval)
        print(row(r))
        if r["exit"] not in (0, None):
            print(f"  (estate-gw exited with {r['exit']})", file=sys.stderr)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
