"""The data path's order, decode -> rules -> store -> publish: a reading
is published only after the batch holding it is committed. A subscriber on
the demo stack looks each reading up in the database (read-only, WAL) the
moment it arrives: every one must already be stored. Then the gateway is
killed (SIGKILL) and restarted: nothing it published before the kill is
missing from the database afterwards."""
import json
import signal
import sqlite3
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from faultlib import FaultCase, db_path, parse_ts, query, wait_for

READINGS = 300

LOOKUP = ("SELECT count(*) FROM readings r JOIN meters m ON m.rid = r.meter "
          "WHERE m.id = ? AND r.ts_ms = ?")


class StoredOnArrival:
    """Subscribes to P/meters/+/reading and looks each reading up in the
    database on arrival (on Paho's thread, one open read-only connection)."""

    def __init__(self, stack):
        self.stack = stack
        self.lock = threading.Lock()
        self.arrived = []      # (meter, ts_ms)
        self.missing = []      # not in the database when they arrived
        self.db = None
        self.client = mqtt.Client(client_id=f"after-commit-{time.time_ns()}")
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(
            stack.prefix + "/meters/+/reading", qos=0)
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", stack.broker.port, keepalive=30)
        self.client.loop_start()

    def stored(self, meter, ts_ms):
        if self.db is None:
            self.db = sqlite3.connect(f"file:{db_path(self.stack)}?mode=ro", uri=True,
                                      timeout=10, check_same_thread=False)
        return self.db.execute(LOOKUP, (meter, ts_ms)).fetchone()[0] > 0

    def on_message(self, client, userdata, msg):
        r = json.loads(msg.payload)
        key = (r["meter"], round(parse_ts(r["ts"]) * 1000))
        found = self.stored(*key)
        with self.lock:
            self.arrived.append(key)
            if not found:
                self.missing.append(key)

    def counts(self):
        with self.lock:
            return len(self.arrived), list(self.missing)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
        if self.db is not None:
            self.db.close()


class PublishAfterCommitTest(FaultCase):
    def start_stack(self):
        stack = self.stack()
        stack.start()
        wait_for(lambda: stack.readings(), 20, what="readings")
        watcher = StoredOnArrival(stack)
        self.addCleanup(watcher.close)
        return stack, watcher

    def test_every_published_reading_is_already_stored(self):
        stack, watcher = self.start_stack()
        wait_for(lambda: watcher.counts()[0] >= READINGS, 60, what=f"{READINGS} readings")
        arrived, missing = watcher.counts()
        self.assertEqual(missing, [], f"{len(missing)} of {arrived} readings were published "
                                      f"before they were stored")

    def test_readings_published_before_a_kill_survive_it(self):
        stack, watcher = self.start_stack()
        wait_for(lambda: watcher.counts()[0] >= READINGS // 3, 60, what="readings")
        stack.gw.stop(sig=signal.SIGKILL)
        time.sleep(0.5)  # the last messages in flight
        arrived, missing = watcher.counts()
        self.assertEqual(missing, [])
        with watcher.lock:
            published = list(watcher.arrived)
        stack.gw.start()
        wait_for(lambda: watcher.counts()[0] > arrived, 20, what="readings after the restart")
        lost = [key for key in published if query(stack, LOOKUP, key)[0][0] == 0]
        self.assertEqual(lost, [], "published before the kill, missing after it")


if __name__ == "__main__":
    unittest.main(verbosity=2)
