"""Pipelined polling (bus pipeline_depth > 1): 120 meters of every meter
driver, word order and function override on one Modbus TCP endpoint, polled
every 500 ms with up to 8 reads in flight. The simulator sees the requests
queued behind one another; every reading's values equal what the simulator
serves. Then five meters fail at once (silent, slow, garbage, wrong
transaction id, exception 0x0B): their readings say error, while every
other meter, including those in the same bursts, stays good, keeps its poll
rate and still has exactly the simulator's values. When the faults end, the
five answer again."""
import os
import shutil
import tempfile
import time
import unittest

from faultlib import FaultCase, log_lines, parse_ts, rate, wait_for

METERS = 120
INTERVAL_MS = 500
DEPTH = 8
# (driver, kind, options) cycled over the meters.
MODELS = (
    ("sdm120", "electricity", ""),
    ("ddsu666", "electricity", ""),
    ("dds238", "electricity", ""),
    ("xintai-water", "water", ""),
    ("sdm630", "electricity", ""),
    ("dtsu666", "electricity", ""),
    ("sdm120", "electricity", 'word_order = "CDAB"; '),
    ("ddsu666", "electricity", 'word_order = "DCBA"; '),
    ("sdm120", "electricity", 'word_order = "BADC"; '),
    ("ddsu666", "electricity", "function = 4; "),
)
FAULTS = (
    ("silent", "P007", {}),
    ("slow", "P033", {"delay_ms": 1000}),
    ("garbage", "P058", {}),
    ("crc", "P081", {}),
    ("exception", "P104", {"code": 0x0B}),
)
FAULTY = {meter for _, meter, _ in FAULTS}


def meter_rows():
    for i in range(METERS):
        driver, kind, options = MODELS[i % len(MODELS)]
        yield f"P{i + 1:03d}", i + 1, driver, kind, options


def device_rows(place):
    """The meters as libconfig list entries; place is 'endpoint = "pipe"'
    (simulator) or 'bus = "pipe"' (gateway)."""
    return ",\n".join(
        f'  {{ id = "{m}"; {place}; slave = {s}; driver = "{d}"; kind = "{k}"; '
        f'category = "office"; location = "test"; {o}serial = {30000000 + s}; }}'
        for m, s, d, k, o in meter_rows())


def write_configs(workdir, interval_ms=INTERVAL_MS):
    sim_conf = os.path.join(workdir, "pipe-sim.conf")
    with open(sim_conf, "w") as f:
        f.write('sim = { seed = 7; control = "127.0.0.1:1"; };\n'
                'endpoints = ( { name = "pipe"; type = "tcp"; listen = "127.0.0.1:1"; } );\n'
                "devices = (\n" + device_rows('endpoint = "pipe"') + "\n);\n")
    gw_conf = os.path.join(workdir, "pipe-gw.conf")
    with open(gw_conf, "w") as f:
        f.write('gateway = { id = "gw1"; site = "test"; data_dir = "/nonexistent"; '
                'log_level = "info"; language = "en"; };\n'
                'mqtt = { uri = "tcp://127.0.0.1:1"; qos_readings = 0; qos_events = 1; };\n'
                f'buses = ( {{ name = "pipe"; type = "tcp"; host = "127.0.0.1"; port = 1; '
                f"timeout_ms = 300; retries = 0; poll_interval_ms = {interval_ms}; "
                f"pipeline_depth = {DEPTH}; }} );\n"
                "meters = (\n" + device_rows('bus = "pipe"') + "\n);\n")
    return gw_conf, sim_conf


class PipelineTest(FaultCase):
    def assert_values_match_simulator(self, stack, meters):
        """Freezes the simulator, then compares fresh good readings of meters
        with what it serves, value by value; returns how many compared."""
        stack.control.call(cmd="freeze", on=True)
        try:
            time.sleep(1.5)  # let polls already under way pass
            frozen_at = time.time()
            expected = {m: stack.control.call(cmd="get", device=m) for m in meters}
            wait_for(lambda: {r["meter"] for r in stack.readings(frozen_at)
                              if r["quality"] == "good"} >= set(meters),
                     10, what="fresh readings after the freeze")
            compared = 0
            for reading in stack.readings(frozen_at):
                if reading["meter"] not in expected or reading["quality"] != "good":
                    continue
                for quantity, value in expected[reading["meter"]]["values"].items():
                    got = reading["values"].get(quantity)
                    if quantity == "serial" or got is None:
                        continue
                    self.assertEqual(got, value, f"{reading['meter']} {quantity}")
                    compared += 1
            return compared
        finally:
            stack.control.call(cmd="freeze", on=False)

    def test_pipelined_bus_values_faults_and_recovery(self):
        confdir = tempfile.mkdtemp(prefix="estate-pipe-")
        self.addCleanup(shutil.rmtree, confdir, True)
        gw_conf, sim_conf = write_configs(confdir)
        stack = self.stack(gw_conf=gw_conf, sim_conf=sim_conf, endpoints=("pipe",)).start()
        everyone = {m for m, *_ in meter_rows()}
        wait_for(lambda: {r["meter"] for r in stack.readings()} >= everyone, 15,
                 what="a reading from every meter")

        # Really pipelined: the simulator found requests queued behind others.
        stats = stack.control.call(cmd="stats")["endpoints"][0]
        print(f"\nsimulator: {stats['requests']} requests, {stats['queued']} queued behind another")
        self.assertGreater(stats["queued"], stats["requests"] * 0.3)
        compared = self.assert_values_match_simulator(stack, sorted(everyone))
        self.assertGreater(compared, METERS * 5)

        neighbours = everyone - FAULTY
        t0 = time.time()
        time.sleep(3)
        baseline = rate(stack, neighbours, t0, t0 + 3)
        self.assertGreater(baseline, len(neighbours) * 1000 / INTERVAL_MS * 0.8)

        t_fault = time.time()
        for fault, meter, params in FAULTS:
            stack.control.call(cmd="fault", device=meter, fault=fault, **params)
        time.sleep(3)  # the five reach their backoff
        start = time.time()
        time.sleep(4)
        end = time.time()
        during = rate(stack, neighbours, start, end)
        print(f"neighbours: {baseline:.1f} readings/s before, {during:.1f} during the faults")
        self.assertLess(abs(during / baseline - 1), 0.2, "neighbours kept their rate")
        since_fault = [r for r in stack.readings() if parse_ts(r["ts"]) >= t_fault + 0.5]
        bad_neighbours = [(r["meter"], r["quality"], r.get("error")) for r in since_fault
                          if r["meter"] in neighbours and r["quality"] != "good"]
        self.assertEqual(bad_neighbours, [], "a fault spilled onto a neighbour")
        for fault, meter, _ in FAULTS:
            mine = [r for r in since_fault if r["meter"] == meter and parse_ts(r["ts"]) < end]
            self.assertTrue(mine, meter)
            self.assertTrue(all(r["quality"] == "error" for r in mine),
                            (fault, [r["quality"] for r in mine]))
            self.assertTrue(log_lines(stack, rf"device {meter} \(slave \d+\): poll failed"), meter)
        # Bursts that broke off never gave a neighbour another meter's values.
        self.assert_values_match_simulator(stack, sorted(neighbours))

        t_clear = time.time()
        for _, meter, _ in FAULTS:
            stack.control.call(cmd="fault", device=meter, fault="none")
        for _, meter, _ in FAULTS:
            wait_for(lambda: any(r["meter"] == meter and r["quality"] == "good" and
                                 parse_ts(r["ts"]) > t_clear for r in stack.readings()),
                     20, what=f"{meter} to recover")


if __name__ == "__main__":
    unittest.main(verbosity=2)
