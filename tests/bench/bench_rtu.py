#!/usr/bin/python3
"""bench_rtu.py - RS-485 bus utilisation of estate-gw's RTU link.

Runs mosquitto, estate-sim with one RTU endpoint on a pseudo-terminal (wire-
accurate: each byte costs its character time at the configured baud) and
estate-gw with a matching rtu bus and N meters polled as fast as the bus
allows (poll_interval_ms = 100, far below what 9600 baud can serve). Over a
measuring window it counts the transactions the simulator served and the
bytes of their request and reply frames, and compares the achieved rate with
the wire limit for exactly that traffic:

    per transaction: (request + reply bytes) x bits per char / baud
                     + 3.5 chars  (the slave sees the end of the request)
                     + turnaround (the slave's own processing)
                     + 3.5 chars  (the master's silence before the next request)

The simulator's turnaround_ms is the time from the end of the request to the
reply, so it must be at least 3.5 chars (3.65 ms at 9600 8N1); the slave's own
processing is then turnaround_ms - 3.5 chars. utilisation = achieved / limit.
Readings seen on MQTT over the window are printed as a gateway-side check.

    ESTATE_BUILD_DIR=build /usr/bin/python3 tests/bench/bench_rtu.py \
        [--meters 24] [--seconds 20] [--baud 9600] [--parity N] [--turnaround-ms MS]
        [--driver sdm120]

Not part of ctest: a figure, not a pass/fail (exit 0 unless the run breaks;
see docs/benchmarks.md)."""
import argparse
import math
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fault"))

import rtu_site  # noqa: E402
from rtu_site import bits_per_char, endpoint_stats, rtu_stack, start_rtu_stack, wait_for  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meters", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--parity", default="N", choices=("N", "E", "O"))
    ap.add_argument("--turnaround-ms", type=int,
                    help="the simulated slave's reply delay (default: 3.5 chars rounded up to a ms)")
    ap.add_argument("--driver", help="every meter of this driver (default: a mix of all meter drivers)")
    args = ap.parse_args()

    drivers = rtu_site.DRIVERS
    if args.driver:
        drivers = tuple(d for d in rtu_site.DRIVERS if d[0] == args.driver)
        if not drivers:
            ap.error(f"unknown meter driver {args.driver}")
    bits = bits_per_char(args.parity)
    char_s = bits / args.baud
    t35_s = 3.5 * char_s
    if args.turnaround_ms is None:
        args.turnaround_ms = math.ceil(t35_s * 1000)
    if args.turnaround_ms / 1000 < t35_s:
        print(f"note: turnaround {args.turnaround_ms} ms is shorter than 3.5 chars "
              f"({t35_s * 1000:.2f} ms); the limit below assumes 3.5 chars", file=sys.stderr)
    processing_s = max(0.0, args.turnaround_ms / 1000 - t35_s)

    workdir = tempfile.mkdtemp(prefix="estate-bench-rtu-")
    stack = rtu_stack(workdir, args.meters, baud=args.baud, parity=args.parity,
                      poll_interval_ms=100, turnaround_ms=args.turnaround_ms, drivers=drivers)
    try:
        start_rtu_stack(stack)
        wait_for(lambda: stack.readings(), 15, what="first readings")
        time.sleep(args.warmup)
        a, ta = endpoint_stats(stack), time.time()
        time.sleep(args.seconds)
        b, tb = endpoint_stats(stack), time.time()
        readings = len(stack.readings(ta)) - len(stack.readings(tb))
        if not stack.gw.alive():
            raise SystemExit("estate-gw died; see its log")
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = tb - ta
    n = b["requests"] - a["requests"]
    nbytes = (b["rx_bytes"] - a["rx_bytes"]) + (b["tx_bytes"] - a["tx_bytes"])
    replies = b["replies"] - a["replies"]
    bad = b["bad_frames"] - a["bad_frames"]
    if n <= 0:
        raise SystemExit("no transactions in the window")
    wire_s = nbytes * char_s + n * (2 * t35_s + processing_s)
    achieved = n / elapsed
    limit = n / wire_s
    print(f"RTU {args.baud} 8{args.parity}1, {args.meters} meters "
          f"({args.driver or 'mixed drivers'}), slave turnaround {args.turnaround_ms} ms, "
          f"{elapsed:.1f} s window")
    print(f"  transactions      {n} ({replies} replies, {bad} bad frames)")
    print(f"  bytes/transaction {nbytes / n:.1f} (request + reply)")
    print(f"  wire time/trans.  {wire_s / n * 1000:.2f} ms (frames + 2 x 3.5 chars + processing)")
    print(f"  achieved          {achieved:.2f} transactions/s")
    print(f"  wire limit        {limit:.2f} transactions/s")
    print(f"  utilisation       {100 * achieved / limit:.1f} %")
    print(f"  readings on MQTT  {readings / elapsed:.2f} /s")


if __name__ == "__main__":
    main()
