#!/usr/bin/env bash
# demo.sh - runs the demo on loopback: a mosquitto broker, the simulated
# compound (estate-sim) and the gateway (estate-gw), and shows what happens:
# alerts, work orders and patrol entries as they come, and a short summary of
# the readings every few seconds. Ctrl-C (or the end of --duration) stops
# everything, the gateway first so it can say goodbye to the broker.
#
# Usage: scripts/demo.sh [--duration SECONDS] [--keep] [--readings] [--no-setup]
#   --duration S  stop by itself after S seconds
#   --keep        reuse the data dir of the last kept run ($ESTATE_DEMO_DIR or
#                 /tmp/estate-demo) instead of a fresh one
#   --readings    also print every reading as it is published
#   --no-setup    do not run deps.sh and build.sh (also ESTATE_DEMO_NO_SETUP=1)
# Environment: ESTATE_BUILD_DIR (default build/), ESTATE_DEMO_MQTT_PORT (default
# a free port), ESTATE_DEMO_HTTP_PORT (8080), ESTATE_DEMO_GW_A_PORT (15502),
# ESTATE_DEMO_GW_B_PORT (15503), ESTATE_DEMO_FIRE_PORT (15504),
# ESTATE_DEMO_CONTROL_PORT (15020, the simulator's control socket).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

duration=0 keep=0 readings=() setup=1
[ "${ESTATE_DEMO_NO_SETUP:-0}" = 1 ] && setup=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
    --keep) keep=1; shift ;;
    --readings) readings=(--readings); shift ;;
    --no-setup) setup=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration" in ''|*[!0-9]*) echo "demo: --duration needs whole seconds" >&2; exit 2 ;; esac

build=${ESTATE_BUILD_DIR:-$root/build}
if [ "$setup" = 1 ]; then
  "$root/scripts/deps.sh"
  "$root/scripts/build.sh" "$build" >/dev/null
fi
for bin in "$build/gateway/estate-gw" "$build/firmware-sim/estate-sim"; do
  [ -x "$bin" ] || { echo "demo: $bin is not built (run scripts/build.sh $build)" >&2; exit 1; }
done

port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mqtt_port=${ESTATE_DEMO_MQTT_PORT:-$(free_port)}
http_port=${ESTATE_DEMO_HTTP_PORT:-8080}
gw_a_port=${ESTATE_DEMO_GW_A_PORT:-15502}
gw_b_port=${ESTATE_DEMO_GW_B_PORT:-15503}
fire_port=${ESTATE_DEMO_FIRE_PORT:-15504}
control_port=${ESTATE_DEMO_CONTROL_PORT:-15020}
taken=0
for named in "MQTT broker:$mqtt_port:ESTATE_DEMO_MQTT_PORT" "web console:$http_port:ESTATE_DEMO_HTTP_PORT" \
             "simulator gw_a:$gw_a_port:ESTATE_DEMO_GW_A_PORT" "simulator gw_b:$gw_b_port:ESTATE_DEMO_GW_B_PORT" \
             "simulator fire:$fire_port:ESTATE_DEMO_FIRE_PORT" \
             "simulator control:$control_port:ESTATE_DEMO_CONTROL_PORT"; do
  IFS=: read -r what p var <<<"$named"
  if ! port_free "$p"; then
    echo "demo: port $p on 127.0.0.1 ($what) is already in use; stop what uses it or choose another with $var=PORT" >&2
    taken=1
  fi
done
[ "$taken" = 0 ] || exit 1

if [ "$keep" = 1 ]; then
  run=${ESTATE_DEMO_DIR:-/tmp/estate-demo}
  mkdir -p "$run"
else
  run=$(mktemp -d /tmp/estate-demo.XXXXXX)
fi
prefix="estate/sunshine-garden/gw1"

# Each child runs in its own session (setsid without a fork keeps the pid),
# so a Ctrl-C on the terminal reaches only this script, which then stops them
# in order.
gw_pid="" sim_pid="" broker_pid="" screen_pid=""
stop_pid() { # PID NAME: SIGTERM, then SIGKILL after 10 s
  local pid=$1 name=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo: $name (pid $pid) did not stop in 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stopping=0
cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  stop_pid "$gw_pid" estate-gw
  stop_pid "$sim_pid" estate-sim
  stop_pid "$screen_pid" "the screen"
  stop_pid "$broker_pid" mosquitto
  echo "demo stopped; logs and data in $run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

first_error() { # LOG: the first line that reads like an error, else the last line
  grep -m1 -iE 'error|fatal|cannot|failed|refus|denied|in use' "$1" 2>/dev/null || tail -n1 "$1" 2>/dev/null || true
}
died() { # NAME PID LOG: non-zero (and a message) when the child has exited
  if ! kill -0 "$2" 2>/dev/null; then
    local code=0
    wait "$2" 2>/dev/null || code=$?
    echo "demo: $1 exited (status $code); its log $3 says: $(first_error "$3")" >&2
    return 0
  fi
  return 1
}
wait_port() { # PORT NAME PID LOG: until PORT accepts, 10 s at most
  for _ in $(seq 100); do
    if died "$2" "$3" "$4"; then return 1; fi
    port_free "$1" || return 0
    sleep 0.1
  done
  echo "demo: $2 did not open port $1 within 10 s; see $4" >&2
  return 1
}

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$run/mosquitto.conf"
setsid mosquitto -c "$run/mosquitto.conf" > "$run/mosquitto.log" 2>&1 & broker_pid=$!
wait_port "$mqtt_port" mosquitto "$broker_pid" "$run/mosquitto.log" || exit 1

setsid python3 "$root/scripts/demo_screen.py" --port "$mqtt_port" --prefix "$prefix" "${readings[@]}" & screen_pid=$!

setsid "$build/firmware-sim/estate-sim" -c "$root/etc/demo/estate-sim.conf" \
  --set "sim.control=127.0.0.1:$control_port" \
  --set "endpoints.gw_a.listen=127.0.0.1:$gw_a_port" --set "endpoints.gw_b.listen=127.0.0.1:$gw_b_port" \
  --set "endpoints.fire.listen=127.0.0.1:$fire_port" \
  --set "endpoints.b3_elec.link=$run/tty/b3_elec" --set "endpoints.b3_water.link=$run/tty/b3_water" \
  > "$run/sim.log" 2>&1 & sim_pid=$!
for p in "$gw_a_port" "$gw_b_port" "$fire_port"; do
  wait_port "$p" estate-sim "$sim_pid" "$run/sim.log" || exit 1
done
for link in "$run/tty/b3_elec" "$run/tty/b3_water"; do # building 3's pseudo-terminals
  for _ in $(seq 50); do [ -e "$link" ] && break; sleep 0.1; done
done

setsid "$build/gateway/estate-gw" -c "$root/etc/demo/estate-gw.conf" \
  --set "mqtt.uri=tcp://127.0.0.1:$mqtt_port" --set "gateway.data_dir=$run/gw" \
  --set "http.listen=127.0.0.1:$http_port" \
  --set "buses.gw_a.port=$gw_a_port" --set "buses.gw_b.port=$gw_b_port" --set "buses.fire.port=$fire_port" \
  --set "buses.b3_elec.device=$run/tty/b3_elec" --set "buses.b3_water.device=$run/tty/b3_water" \
  > "$run/gw.log" 2>&1 & gw_pid=$!
wait_port "$http_port" estate-gw "$gw_pid" "$run/gw.log" || exit 1

cat <<TXT
estate-gw demo
  run dir:  $run ($( [ "$keep" = 1 ] && echo "kept between runs" || echo "fresh for this run; --keep reuses one"))
  pids:     estate-gw=$gw_pid estate-sim=$sim_pid mosquitto=$broker_pid screen=$screen_pid
  broker:   tcp://127.0.0.1:$mqtt_port   (mosquitto_sub -p $mqtt_port -t '$prefix/#' -v)
  console:  http://127.0.0.1:$http_port/   users: frontdesk/front123, engineer/eng123,
            supervisor/super123, viewer/view123
  data:     $run/gw (SQLite); logs: $run/gw.log, $run/sim.log, $run/mosquitto.log
  operator: $build/gateway/estate-ctl -c etc/demo/estate-gw.conf --set gateway.data_dir=$run/gw inventory
Alerts, work orders and patrol entries as they happen; readings summarised every 5 s.
TXT

# Watch the children until the end of --duration or a signal.
start=$SECONDS
while [ "$duration" -eq 0 ] || [ $((SECONDS - start)) -lt "$duration" ]; do
  sleep 0.5 & wait $! || true
  died estate-gw "$gw_pid" "$run/gw.log" && exit 1
  died estate-sim "$sim_pid" "$run/sim.log" && exit 1
  died mosquitto "$broker_pid" "$run/mosquitto.log" && exit 1
  died "the screen" "$screen_pid" /dev/null && exit 1
done
exit 0
