"""cn_site.py - a generated site of Chinese household meters for the DL/T
645 / CJ/T 188 tests: estate-sim with a Modbus RTU, a DL/T 645 and a CJ/T
188 endpoint on pseudo-terminals (links in the work dir) and an estate-gw
config with matching buses, plus a harness.Stack over them and its start-up
(simulator first, then the gateway once the three links exist). With
converters=True the DL/T 645 and CJ/T 188 lines sit behind simulated serial
converters in transparent mode (rtu_over_tcp endpoints on loopback ports)."""
import os

from harness import Stack, free_port, wait_for, wait_port

DL_METERS = (("E-DL-1", "000000000101", "2-101"), ("E-DL-2", "000000000102", "2-102"),
             ("E-DL-3", "000000000103", "2-103"))
CJ_METERS = (("W-CJ-1", "10000000000201", "2-201"), ("W-CJ-2", "10000000000202", "2-202"),
             ("W-CJ-3", "10000000000203", "2-203"))
VACANT = {"2-201", "2-202"}


def national_line(kind, protocol, link, port):
    """The gateway's bus and the simulator's endpoint of one national line:
    a pty, or (port given) a converter on a loopback TCP port."""
    if port is None:
        bus = f'type = "rtu"; protocol = "{protocol}"; device = "{link}";'
        endpoint = f'type = "rtu"; protocol = "{protocol}"; link = "{link}";'
    else:
        bus = f'type = "rtu_over_tcp"; protocol = "{protocol}"; host = "127.0.0.1"; port = {port};'
        endpoint = f'type = "rtu_over_tcp"; protocol = "{protocol}"; listen = "127.0.0.1:{port}";'
    return (f'{{ name = "{kind}"; {bus} retries = 0;\n    timeout_ms = 300; poll_interval_ms = 1000; }}',
            f'{{ name = "{kind}"; {endpoint} baud = 2400;\n    parity = "E"; turnaround_ms = 20; }}')


def write_site(workdir, converters=False):
    """Returns the two config paths, the pty links to wait for and the
    converters' TCP ports (empty without converters)."""
    tty = os.path.join(workdir, "tty")
    links = {name: os.path.join(tty, name) for name in ("mb", "dl", "cj")}
    ports = {"dl": free_port(), "cj": free_port()} if converters else {}
    dl_bus, dl_endpoint = national_line("dl", "dlt645", links["dl"], ports.get("dl"))
    cj_bus, cj_endpoint = national_line("cj", "cjt188", links["cj"], ports.get("cj"))
    for name in ports:
        del links[name]
    units = [u for _, _, u in DL_METERS + CJ_METERS]
    units_text = ",\n".join(
        f'  {{ id = "{u}"; building = "2"; occupancy = "{"vacant" if u in VACANT else "occupied"}"; }}'
        for u in units)
    gw_meters = ['  { id = "E-MB-1"; bus = "mb"; slave = 1; driver = "sdm120"; category = "unit";'
                 ' unit = "2-101"; }']
    sim_devices = ['  { id = "E-MB-1"; endpoint = "mb"; slave = 1; driver = "sdm120";'
                   ' category = "unit"; unit = "2-101"; occupied = true; }']
    for mid, address, unit in DL_METERS:
        gw_meters.append(f'  {{ id = "{mid}"; bus = "dl"; address = "{address}";'
                         f' driver = "dlt645_2007_1p"; category = "unit"; unit = "{unit}"; }}')
        sim_devices.append(f'  {{ id = "{mid}"; endpoint = "dl"; address = "{address}";'
                           f' driver = "dlt645_2007_1p"; category = "unit"; unit = "{unit}";'
                           f' occupied = true; import_kwh = 1234.5; }}')
    for mid, address, unit in CJ_METERS:
        vacant = unit in VACANT
        gw_meters.append(f'  {{ id = "{mid}"; bus = "cj"; address = "{address}";'
                         f' driver = "cjt188_cold_water"; category = "unit"; unit = "{unit}";'
                         f' valve = true; }}')
        sim_devices.append(f'  {{ id = "{mid}"; endpoint = "cj"; address = "{address}";'
                           f' driver = "cjt188_cold_water"; category = "unit"; unit = "{unit}";'
                           f' occupied = {"false" if vacant else "true"}; volume_m3 = 56.78; }}')
    meters_text = ",\n".join(gw_meters)
    devices_text = ",\n".join(sim_devices)
    gw_conf = os.path.join(workdir, "gw.conf")
    with open(gw_conf, "w") as f:
        f.write(f"""gateway = {{ id = "gw1"; site = "cn"; data_dir = "{workdir}/gw-default";
  log_level = "info"; language = "en"; }};
mqtt = {{ uri = "tcp://127.0.0.1:1883"; }};
buses = (
  {{ name = "mb"; type = "rtu"; device = "{links['mb']}"; baud = 9600; retries = 0;
    poll_interval_ms = 1000; }},
  {dl_bus},
  {cj_bus}
);
units = (
{units_text}
);
meters = (
{meters_text}
);
rules = {{
  reverse_energy = {{ severity = "major"; hold_s = 0; clear_s = 20;
                     negative_power_hold_s = 2; export_confirm_polls = 2; }};
  vacant_flow = {{ severity = "major"; hold_s = 0; clear_s = 30; min_increase_m3 = 0.005;
                  confirm_reads = 1; window_s = 60; auto_close_valve = true; valve_check_s = 4;
                  valve_retries = 1; }};  # one more close (4 s, then 8 s), then critical
  meter_offline = {{ severity = "minor"; failures = 3; }};
  battery_low = {{ hold_s = 0; clear_s = 4; confirm_reads = 2; }};  # a work order (default)
}};
http = {{ listen = ""; }};
""")
    sim_conf = os.path.join(workdir, "sim.conf")
    with open(sim_conf, "w") as f:
        f.write(f"""sim = {{ seed = 7; control = "127.0.0.1:0"; }};
endpoints = (
  {{ name = "mb"; type = "rtu"; link = "{links['mb']}"; baud = 9600; parity = "N";
    unknown_slave = "silent"; }},
  {dl_endpoint},
  {cj_endpoint}
);
devices = (
{devices_text}
);
""")
    return gw_conf, sim_conf, links, ports


def wait_for_lines(links, ports):
    for link in links.values():
        wait_for(lambda: os.path.exists(link), 10, what=f"pty link {link}")
    for port in ports.values():
        wait_port(port)


def start_cn_stack(workdir, converters=False):
    """Writes the site into workdir and starts broker, simulator and gateway.
    The stack's cn_links and cn_ports are what a restarted simulator must
    bring back (wait_for_lines)."""
    gw_conf, sim_conf, links, ports = write_site(workdir, converters)
    stack = Stack(gw_conf=gw_conf, sim_conf=sim_conf, endpoints=(), gw_sets=("http.listen=",))
    stack.cn_links, stack.cn_ports = links, ports
    try:
        stack.start(gw=False)
        wait_for_lines(links, ports)
        stack.gw.start()
    except Exception:
        stack.dump_logs()
        stack.close()
        raise
    return stack
