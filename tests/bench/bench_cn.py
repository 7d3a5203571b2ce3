#!/usr/bin/python3
"""bench_cn.py - the poll cycle of a DL/T 645 bus at 2400 8E1 against its wire limit.

Runs mosquitto, estate-sim with one DL/T 645 endpoint on a pseudo-terminal
and estate-gw with a matching `protocol = "dlt645"` rtu bus of N
dlt645_2007_1p meters. A pty moves bytes at once, so the simulator paces the
wire itself: each reply goes out when the request's and the reply's
characters would have passed at the line's speed (11 bits a character at
8E1, the FE preambles included) plus the meter's turnaround_ms. The
meters' poll_interval_ms is far below what the bus can serve, so it runs
flat out. Over a window the script counts the transactions the simulator
served and their bytes and compares the achieved rate with the wire limit
for exactly that traffic:

    per transaction = (request + reply bytes) x 11 bits / baud
                      + meter turnaround (the simulator's turnaround_ms)
                      + master turnaround (the bus's request_gap_ms)

utilisation = achieved / limit. The achieved poll cycle is the mean time
between two readings of a meter on MQTT; the limit cycle is what one round of
the meters' items takes at the wire limit (3 items a poll, and 2 more every
10th poll, per etc/models/dlt645_2007_1p.conf).

    ESTATE_BUILD_DIR=build /usr/bin/python3 tests/bench/bench_cn.py \\
        [--meters 32] [--seconds 60] [--turnaround-ms 20] [--gap-ms 20]

Not part of ctest: a figure, not a pass/fail (see docs/benchmarks.md)."""
import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import Stack, wait_for  # noqa: E402

BAUD = 2400
BITS_PER_CHAR = 11  # start, 8 data, even parity, stop
FAST_ITEMS, SLOW_ITEMS, SLOW_EVERY = 3, 2, 10  # etc/models/dlt645_2007_1p.conf


def write_site(workdir, nmeters, turnaround_ms, gap_ms):
    link = os.path.join(workdir, "tty", "dl")
    units, gw_meters, sim_devices = [], [], []
    for i in range(nmeters):
        mid, unit, address = f"E-{i + 1:03d}", f"9-{i + 1:03d}", f"{100000000001 + i:012d}"
        units.append(f'  {{ id = "{unit}"; building = "9"; occupancy = "occupied"; }}')
        gw_meters.append(f'  {{ id = "{mid}"; bus = "dl"; address = "{address}";'
                         f' driver = "dlt645_2007_1p"; category = "unit"; unit = "{unit}"; }}')
        sim_devices.append(f'  {{ id = "{mid}"; endpoint = "dl"; address = "{address}";'
                           f' driver = "dlt645_2007_1p"; category = "unit"; unit = "{unit}";'
                           f' occupied = true; import_kwh = {1000 + i}.5; }}')
    gw_conf = os.path.join(workdir, "gw.conf")
    with open(gw_conf, "w") as f:
        f.write(f"""gateway = {{ id = "gw1"; site = "cn"; data_dir = "{workdir}/gw-default";
  log_level = "info"; language = "en"; }};
mqtt = {{ uri = "tcp://127.0.0.1:1883"; }};
buses = (
  {{ name = "dl"; type = "rtu"; protocol = "dlt645"; device = "{link}"; baud = {BAUD};
    parity = "E"; retries = 0; request_gap_ms = {gap_ms}; poll_interval_ms = 1000; }}
);
units = (
{",".join(chr(10) + u for u in units)}
);
meters = (
{",".join(chr(10) + m for m in gw_meters)}
);
http = {{ listen = ""; }};
""")
    sim_conf = os.path.join(workdir, "sim.conf")
    with open(sim_conf, "w") as f:
        f.write(f"""sim = {{ seed = 7; control = "127.0.0.1:0"; }};
endpoints = (
  {{ name = "dl"; type = "rtu"; protocol = "dlt645"; link = "{link}"; baud = {BAUD};
    parity = "E"; turnaround_ms = {turnaround_ms}; }}
);
devices = (
{",".join(chr(10) + d for d in sim_devices)}
);
""")
    return gw_conf, sim_conf, link


def endpoint_stats(stack):
    for ep in stack.control.call(cmd="stats")["endpoints"]:
        if ep["name"] == "dl":
            return ep
    raise AssertionError("no endpoint dl")


def reading_time(reading):
    return datetime.datetime.fromisoformat(reading["ts"].replace("Z", "+00:00")).timestamp()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meters", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--turnaround-ms", type=int, default=20, help="the meter's reaction time")
    ap.add_argument("--gap-ms", type=int, default=20, help="the bus's request_gap_ms")
    args = ap.parse_args()
    char_s = BITS_PER_CHAR / BAUD

    workdir = tempfile.mkdtemp(prefix="estate-bench-cn-")
    gw_conf, sim_conf, link = write_site(workdir, args.meters, args.turnaround_ms, args.gap_ms)
    stack = Stack(gw_conf=gw_conf, sim_conf=sim_conf, endpoints=(), gw_sets=("http.listen=",))
    try:
        stack.start(gw=False)
        wait_for(lambda: os.path.exists(link), 10, what=f"pty link {link}")
        stack.gw.start()
        # every meter read once: the poller is past its start-up round
        wait_for(lambda: len({r["meter"] for r in stack.readings()}) == args.meters,
                 60 + args.meters * 2, what="a reading of every meter")
        a, ta = endpoint_stats(stack), time.time()
        time.sleep(args.seconds)
        b, tb = endpoint_stats(stack), time.time()
        window = [r for r in stack.readings(ta) if r["quality"] == "good"]
        if not stack.gw.alive():
            raise SystemExit("estate-gw died; see its log")
        errors = len([r for r in stack.readings(ta) if r["quality"] != "good"])
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = tb - ta
    n = b["requests"] - a["requests"]
    replies = b["replies"] - a["replies"]
    nbytes = (b["rx_bytes"] - a["rx_bytes"]) + (b["tx_bytes"] - a["tx_bytes"])
    if n <= 0:
        raise SystemExit("no transactions in the window")
    per_trans_s = nbytes / n * char_s + (args.turnaround_ms + args.gap_ms) / 1000
    achieved = n / elapsed
    limit = 1 / per_trans_s
    times = {}
    for r in window:
        times.setdefault(r["meter"], []).append(reading_time(r))
    gaps = [t2 - t1 for ts in times.values() for t1, t2 in zip(sorted(ts), sorted(ts)[1:])]
    cycle = statistics.mean(gaps) if gaps else float("nan")
    longest = max(gaps) if gaps else float("nan")
    polls = len(window)
    trans_per_poll = n / polls if polls else float("nan")
    # dlt645_2007_1p: import, export and power every poll, voltage and current every 10th
    fast_cycle = args.meters * FAST_ITEMS * per_trans_s
    mean_cycle = args.meters * (FAST_ITEMS + SLOW_ITEMS / SLOW_EVERY) * per_trans_s
    print(f"DL/T 645 {BAUD} 8E1, {args.meters} x dlt645_2007_1p, meter turnaround "
          f"{args.turnaround_ms} ms, request_gap_ms {args.gap_ms}, {elapsed:.1f} s window")
    print(f"  transactions      {n} ({replies} replies), {polls} good readings, {errors} not good")
    print(f"  bytes/transaction {nbytes / n:.1f} (request + reply, FE preambles included)")
    print(f"  items/poll        {trans_per_poll:.2f} (transactions / readings in the window)")
    print(f"  wire time/trans.  {per_trans_s * 1000:.1f} ms (frames + both turnarounds)")
    print(f"  achieved          {achieved:.3f} transactions/s")
    print(f"  wire limit        {limit:.3f} transactions/s")
    print(f"  utilisation       {100 * achieved / limit:.1f} %")
    print(f"  poll cycle        {cycle:.1f} s achieved (mean of {len(gaps)} gaps, longest "
          f"{longest:.1f} s)")
    print(f"  at the wire limit {fast_cycle:.1f} s with {FAST_ITEMS} items a meter, "
          f"{mean_cycle:.1f} s on average with the every-{SLOW_EVERY}th-poll items")


if __name__ == "__main__":
    main()
