"""faultlib.py - helpers shared by the fault tests (tests/fault/test_*.py).
The stack itself (broker, simulator, gateway, subscriber, simulator control)
is tests/integration/harness.py; this adds what only fault tests need:
timestamps, gaps, read-only looks into the gateway's database and log, and a
TestCase that prints the logs when a test fails."""
import datetime
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (Broker, Process, SimControl, Stack, Subscriber,  # noqa: E402,F401
                     binary, free_port, wait_for, wait_port)


def parse_ts(text):
    """RFC 3339 UTC with milliseconds ("2026-11-27T03:55:54.546Z") -> epoch seconds."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def largest_gap(times):
    """The largest difference between consecutive sorted times (0 for < 2)."""
    times = sorted(times)
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def first_arrivals(values):
    """values in the order first seen, duplicates (at-least-once) dropped."""
    seen, out = set(), []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def db_path(stack):
    return os.path.join(stack.data_dir, "estate.db")


def query(stack, sql, args=()):
    """Runs one read-only query on the gateway's database (the daemon may be
    running: WAL lets a reader in)."""
    con = sqlite3.connect(f"file:{db_path(stack)}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def scalar(stack, sql, args=(), default=None):
    """The first column of the first row, or default when the database is
    not there yet or busy."""
    try:
        rows = query(stack, sql, args)
    except sqlite3.Error:
        return default
    return rows[0][0] if rows else default


def outbox_count(stack):
    return scalar(stack, "SELECT count(*) FROM outbox")


def integrity_check(stack):
    """`sqlite3 estate.db 'PRAGMA integrity_check'` with the CLI, as an operator would."""
    res = subprocess.run(["sqlite3", db_path(stack), "PRAGMA integrity_check"],
                         capture_output=True, text=True, timeout=60)
    return (res.stdout + res.stderr).strip()


def log_lines(stack, pattern):
    """Lines of the gateway's log (every run so far) matching a regex."""
    rx = re.compile(pattern)
    return [line for line in stack.gw.output().splitlines() if rx.search(line)]


def log_ts(line):
    """The epoch time of a gateway log line (it starts with the RFC 3339 time)."""
    return parse_ts(line.split(" ", 1)[0])


def readings_by_meter(stack, since=0.0):
    """meter -> reading payloads in arrival order."""
    out = {}
    for r in stack.readings(since):
        out.setdefault(r["meter"], []).append(r)
    return out


def rate(stack, meters, start, end):
    """Readings per second of the given meters, counted by their own ts."""
    n = 0
    for r in stack.readings():
        if r["meter"] in meters and start <= parse_ts(r["ts"]) < end:
            n += 1
    return n / (end - start)


class FaultCase(unittest.TestCase):
    """Keeps self.stacks closed at the end and prints their logs on failure."""

    def setUp(self):
        self.stacks = []

    def stack(self, **kwargs):
        s = Stack(**kwargs)
        self.stacks.append(s)
        return s

    def tearDown(self):
        failed = False
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and hasattr(result, "failures"):  # Python >= 3.11
            failed = any(t is self for t, _ in result.failures + result.errors)
        elif outcome is not None:
            failed = any(e for _, e in getattr(outcome, "errors", []) if e)
        for s in self.stacks:
            if failed:
                s.dump_logs()
            s.close()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)
