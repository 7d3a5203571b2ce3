"""A silent broker link: the path between the gateway and the broker stops
forwarding in both directions for 150 s without closing (no FIN, no RST),
through a small TCP proxy in this test. The gateway gives the session up
within 2 x keepalive_s (30 s) plus a tick of nothing acknowledged (Paho
may end it sooner, when a write cannot complete); the readings
it sent meanwhile were never confirmed by a PUBACK, so it queues them again;
the later ones wait in the outbox. When the path forwards again every event
and every reading of the window arrives: no meter has a hole in its
readings larger than about two poll intervals."""
import socket
import threading
import time

from faultlib import (FaultCase, first_arrivals, largest_gap, log_lines, log_ts, outbox_count,
                      parse_ts, query, wait_for)
from harness import free_port

SILENT_S = 150
KEEPALIVE_S = 15
POLL_S = 1.0
LOAD = [f"buses.{bus}.poll_interval_ms={int(POLL_S * 1000)}" for bus in ("gw_a", "gw_b", "fire")]


class SilentProxy:
    """Forwards TCP between its port and the broker's until silence() is
    called: then it neither forwards nor closes anything, in either
    direction, so both ends see a connection that says nothing (their
    socket buffers fill, nothing is acknowledged), until forward()."""

    def __init__(self):
        self.port = free_port()
        self.target = None
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.closed = False
        self.sockets = []
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            threading.Thread(target=self.pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client), daemon=True).start()

    def pump(self, src, dst):
        try:
            while not self.closed:
                self.forwarding.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.forwarding.wait()  # silence: hold what was read, forward nothing
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def silence(self):
        self.forwarding.clear()

    def forward(self):
        self.forwarding.set()

    def close(self):
        self.closed = True
        self.forwarding.set()
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


class SilentBrokerTest(FaultCase):
    def test_silent_link_150s_loses_no_event_and_no_reading(self):
        proxy = SilentProxy()
        self.addCleanup(proxy.close)
        stack = self.stack(gw_sets=LOAD + [f"mqtt.uri=tcp://127.0.0.1:{proxy.port}",
                                           f"mqtt.keepalive_s={KEEPALIVE_S}"])
        proxy.target = stack.broker.port
        stack.start()
        # the meters LOAD polls every POLL_S (building 3's 2400-baud lines cannot)
        meters = {d["id"] for d in stack.control.call(cmd="list")["devices"]
                  if d.get("driver") != "notifier-gw" and d.get("endpoint") in ("gw_a", "gw_b")}
        wait_for(lambda: {r["meter"] for r in stack.readings()} >= meters, 20,
                 what="a reading from every meter")
        self.sleep(3)

        t_silent = time.time()
        proxy.silence()
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=3, state="alarm")
        self.sleep(20)
        stack.ctl("patrol", "checkin", "--location", "plant room", "--text", "during the silence")
        stack.control.call(cmd="event", device="FP-1", event="zone", zone=3, state="normal")
        self.sleep(max(0.0, t_silent + SILENT_S - time.time()))
        queued = outbox_count(stack)
        proxy.forward()
        t_forward = time.time()

        # Either the gateway's own check (nothing acknowledged for
        # 2 x keepalive_s) or Paho (a write that cannot complete) ends the session.
        gave_up = [log_ts(line) for line in
                   log_lines(stack, r"the link is silent|connection to \S+ lost")]
        gave_up = [t for t in gave_up if t >= t_silent - 1]
        self.assertTrue(gave_up, "the gateway noticed the silent link")
        detection = min(gave_up) - t_silent
        wait_for(lambda: outbox_count(stack) == 0, 90, what="the outbox to drain")
        wait_for(lambda: all(any(parse_ts(r["ts"]) > t_forward + 2 for r in rs)
                             for m, rs in self.by_meter(stack).items() if m in meters), 30,
                 what="fresh readings after the silence")
        print(f"\nsilent {t_forward - t_silent:.0f} s; detected after {detection:.1f} s; "
              f"outbox held {queued} rows at the end")
        self.assertLessEqual(detection, 2 * KEEPALIVE_S + 3,
                             "a silent link is given up within 2 x keepalive_s and a tick")
        self.assertGreater(queued or 0, 0.8 * (SILENT_S - 2 * KEEPALIVE_S - 3) / POLL_S * len(meters),
                           "readings of the silence waited in the outbox")

        lost = 0
        for meter, rs in self.by_meter(stack).items():
            if meter not in meters:
                continue
            ts = sorted(set(parse_ts(r["ts"]) for r in rs))
            covering = [t for t in ts if t_silent - 5 <= t <= t_forward + 5]
            self.assertLess(min(covering), t_silent, meter)
            self.assertGreater(max(covering), t_forward, meter)
            gap = largest_gap(covering)
            lost += max(0, round(gap / POLL_S) - 1)
            self.assertLessEqual(gap, 2 * POLL_S + 0.35, f"{meter}: a {gap:.2f} s hole")
        print(f"readings missing in the window: {lost}")

        patrol_db = [seq for (seq,) in query(stack, "SELECT seq FROM patrol ORDER BY seq")]
        patrol_mqtt = first_arrivals(m["seq"] for m in stack.sub.json_on("/patrol"))
        self.assertEqual(patrol_mqtt, patrol_db, "patrol entries: all, in order")
        self.assertTrue(any("during the silence" in m.get("text", "")
                            for m in stack.sub.json_on("/patrol")))
        incidents = query(stack, "SELECT id, state FROM incidents WHERE rule = 'fire_alarm'")
        self.assertTrue(incidents, "the fire alarm raised an incident")
        seen = {(a["id"], a["state"]) for a in stack.sub.json_on("/alerts") if "id" in a}
        for iid, state in incidents:
            self.assertIn((iid, "raised"), seen, f"incident {iid} raised")
            if state == "cleared":
                self.assertIn((iid, "cleared"), seen, f"incident {iid} cleared")

    def by_meter(self, stack):
        out = {}
        for r in stack.readings():
            out.setdefault(r["meter"], []).append(r)
        return out
