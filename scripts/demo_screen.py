#!/usr/bin/env python3
"""demo_screen.py - the screen of scripts/demo.sh: subscribes to the gateway's
topics (through mosquitto_sub) and prints one line per alert, work order and
patrol entry as they happen, plus a short summary of the readings every few
seconds (--readings prints the raw reading stream as well)."""
import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time


def now():
    return time.strftime("%H:%M:%S")


def say(text):
    print(f"{now()}  {text}", flush=True)


def where_of(record):
    """Where a record is about: its meter, panel zone or unit, and its place
    when that says more."""
    if record.get("meter"):
        subject = str(record["meter"])
    elif record.get("panel"):
        zone = record.get("zone")
        subject = f"{record['panel']} zone {zone}" if zone is not None else str(record["panel"])
    else:
        subject = str(record.get("unit") or "")
    place = record.get("where") or record.get("location") or ""
    if not isinstance(place, str):
        place = ""
    if subject and place and subject not in place:
        return f"{subject} {place}"
    return place or subject or "-"


def show_alert(a):
    say(f"alert {a.get('state', '?'):<7} {a.get('severity', '?'):<8} {a.get('rule', '?')}: "
        f"{where_of(a)}  ({a.get('text', '')})")


def show_workorder(w):
    say(f"work order {w.get('id', '?')} {w.get('state', '?')}: {where_of(w)}"
        f"  ({w.get('description', '')})")


def show_patrol(p):
    say(f"patrol #{p.get('seq', '?')} {p.get('kind', '?')}: {p.get('text', '')}")


class ReadingTally:
    """Meters seen since start, readings by quality since the last summary."""

    def __init__(self):
        self.meters = set()
        self.quality = {}

    def add(self, r):
        self.meters.add(r.get("meter"))
        q = r.get("quality", "?")
        self.quality[q] = self.quality.get(q, 0) + 1

    def summary(self, every_s):
        q = self.quality
        say(f"readings: {len(self.meters)} meters seen; last {every_s:g} s: "
            f"{q.get('good', 0)} good, {q.get('stale', 0)} stale, {q.get('error', 0)} error")
        self.quality = {}


def handle(line, prefix, tally, raw_readings):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if not topic.startswith(prefix + "/"):
        return
    sub = topic[len(prefix) + 1:]
    if sub.startswith("alerts/active/"):
        return  # the same transition also arrives on P/alerts
    if not payload:
        return  # a cleared retained message
    try:
        record = json.loads(payload)
    except ValueError:
        say(f"{sub}: (not JSON) {payload[:120]}")
        return
    if sub.endswith("/reading"):
        tally.add(record)
        if raw_readings:
            print(f"{now()}  {topic} {payload}", flush=True)
    elif sub == "alerts":
        show_alert(record)
    elif sub.startswith("workorders/"):
        show_workorder(record)
    elif sub == "patrol":
        show_patrol(record)
    elif sub == "status":
        say(f"gateway {record.get('state', '?')} (version {record.get('version', '?')})")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True, help="the broker's port on 127.0.0.1")
    ap.add_argument("--prefix", required=True, help="the gateway's topic prefix")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between reading summaries")
    ap.add_argument("--readings", action="store_true", help="print every reading too")
    args = ap.parse_args()

    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(args.port),
                            "-t", args.prefix + "/#", "-v"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def stop(*_):
        sub.terminate()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tally = ReadingTally()
    next_summary = time.monotonic() + args.every
    pending = b""
    while True:
        ready, _, _ = select.select([sub.stdout], [], [], max(0.0, next_summary - time.monotonic()))
        if ready:
            chunk = os.read(sub.stdout.fileno(), 65536)
            if not chunk:
                say("the subscription to the broker ended")
                return 1
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                handle(line.decode("utf-8", "replace"), args.prefix, tally, args.readings)
        if time.monotonic() >= next_summary:
            tally.summary(args.every)
            next_summary += args.every


if __name__ == "__main__":
    sys.exit(main())
