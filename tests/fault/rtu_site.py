"""rtu_site.py - a generated RS-485 site for the RTU fault tests and the RTU
benchmark: one estate-sim RTU endpoint on a pseudo-terminal (its link in a
temp dir) and an estate-gw config with a matching rtu bus, N meters cycling
through the drivers; or (transport="rtu_over_tcp") the same bus behind a
simulated serial-to-Ethernet converter in transparent mode: an rtu_over_tcp
endpoint and bus on a loopback port. Used with harness.Stack
(tests/integration)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import Stack, wait_for  # noqa: E402

# (driver, kind, category): every meter driver, electricity and water.
DRIVERS = (
    ("sdm120", "electricity", "unit"),
    ("ddsu666", "electricity", "unit"),
    ("dds238", "electricity", "unit"),
    ("xintai-water", "water", "unit"),
    ("sdm630", "electricity", "building"),
    ("dtsu666", "electricity", "building"),
)

BUS = "rs485"


def bits_per_char(parity, data_bits=8, stop_bits=1):
    return 1 + data_bits + (0 if parity == "N" else 1) + stop_bits


def write_site(workdir, nmeters, baud=9600, parity="N", stop_bits=1, poll_interval_ms=1000,
               turnaround_ms=2, drivers=DRIVERS, timeout_ms=0, transport="rtu"):
    """Writes gw.conf and sim.conf into workdir; returns (gw_conf, sim_conf,
    link, meters) where meters is a list of (id, slave, driver). With
    transport="rtu_over_tcp" the link is None and the port is a placeholder
    that harness.Stack replaces (endpoint and bus share the name)."""
    link = os.path.join(workdir, "tty", "rtu0")
    meters = []
    units = []
    gw_meters = []
    sim_devices = []
    for i in range(nmeters):
        driver, kind, category = drivers[i % len(drivers)]
        slave = i + 1
        mid = f"M{slave:03d}"
        meters.append((mid, slave, driver))
        unit_gw = unit_sim = ""
        if category == "unit":
            uid = f"1-{slave:03d}"
            units.append(f'  {{ id = "{uid}"; building = "1"; occupancy = "occupied"; }}')
            unit_gw = f' unit = "{uid}";'
            unit_sim = f' unit = "{uid}"; occupied = true;'
        else:
            unit_gw = ' building = "1";'
        valve = " valve = true;" if driver == "xintai-water" else ""
        gw_meters.append(f'  {{ id = "{mid}"; bus = "{BUS}"; slave = {slave}; driver = "{driver}";'
                         f' kind = "{kind}"; category = "{category}";{unit_gw}{valve}'
                         f' serial = "{30000001 + i}"; }}')
        sim_devices.append(f'  {{ id = "{mid}"; endpoint = "{BUS}"; slave = {slave};'
                           f' driver = "{driver}"; category = "{category}";{unit_sim}'
                           f' serial = {30000001 + i}; }}')
    units_text = ",\n".join(units)
    meters_text = ",\n".join(gw_meters)
    devices_text = ",\n".join(sim_devices)
    timeout = f" timeout_ms = {timeout_ms};" if timeout_ms else ""
    if transport == "rtu_over_tcp":
        gw_where = 'type = "rtu_over_tcp"; host = "127.0.0.1"; port = 502;'
        sim_where = 'type = "rtu_over_tcp"; listen = "127.0.0.1:0";'
        link = None
    else:
        gw_where = f'type = "rtu"; device = "{link}";'
        sim_where = f'type = "rtu"; link = "{link}";'

    gw_conf = os.path.join(workdir, "gw.conf")
    with open(gw_conf, "w") as f:
        f.write(f"""gateway = {{ id = "gw1"; site = "rtu"; data_dir = "{workdir}/gw-default";
  log_level = "info"; language = "en"; }};
mqtt = {{ uri = "tcp://127.0.0.1:1883"; }};
buses = (
  {{ name = "{BUS}"; {gw_where} baud = {baud}; parity = "{parity}";
    data_bits = 8; stop_bits = {stop_bits}; retries = 0; poll_interval_ms = {poll_interval_ms};{timeout} }}
);
units = (
{units_text}
);
meters = (
{meters_text}
);
http = {{ listen = ""; }};
""")
    sim_conf = os.path.join(workdir, "sim.conf")
    with open(sim_conf, "w") as f:
        f.write(f"""sim = {{ seed = 7; control = "127.0.0.1:0"; }};
endpoints = (
  {{ name = "{BUS}"; {sim_where} baud = {baud}; parity = "{parity}";
    data_bits = 8; stop_bits = {stop_bits}; turnaround_ms = {turnaround_ms}; unknown_slave = "silent"; }}
);
devices = (
{devices_text}
);
""")
    return gw_conf, sim_conf, link, meters


def rtu_stack(workdir, nmeters, gw_sets=(), **site):
    """A harness.Stack (broker + simulator + gateway) over the generated site.
    The gateway's http listener is off; the simulator's pty link lives in
    workdir. Call .start(); the gateway finds the link once the simulator
    made it (the link reconnects with backoff)."""
    gw_conf, sim_conf, link, meters = write_site(workdir, nmeters, **site)
    stack = Stack(gw_conf=gw_conf, sim_conf=sim_conf, endpoints=() if link else (BUS,),
                  gw_sets=("http.listen=",) + tuple(gw_sets))
    stack.rtu_link = link
    stack.rtu_meters = meters
    return stack


def start_rtu_stack(stack):
    """Starts broker and simulator, waits for the pty link, then the gateway."""
    stack.start(gw=False)
    if stack.rtu_link is not None:
        wait_for(lambda: os.path.exists(stack.rtu_link), 10, what=f"pty link {stack.rtu_link}")
    stack.gw.start()
    return stack


def endpoint_stats(stack, name=BUS):
    stats = stack.control.call(cmd="stats")
    for ep in stats["endpoints"]:
        if ep["name"] == name:
            return ep
    raise AssertionError(f"no endpoint {name} in {stats}")
