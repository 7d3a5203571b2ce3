#!/usr/bin/env bash
# demo.sh - runs the demo on loopback: a mosquitto broker on a free port, the
# simulated compound (estate-sim) and the gateway (estate-gw), and prints
# what the gateway publishes. Ctrl-C stops everything.
# Usage: scripts/demo.sh [--duration SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=0
if [ "${1:-}" = "--duration" ]; then duration=${2:?--duration needs seconds}; fi

"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build" >/dev/null

run=${ESTATE_DEMO_DIR:-/tmp/estate-demo}
mkdir -p "$run"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=${ESTATE_DEMO_MQTT_PORT:-$(free_port)}
http_port=${ESTATE_DEMO_HTTP_PORT:-8080}
prefix="estate/sunshine-garden/gw1"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo; echo "demo stopped; logs and data in $run"
}
trap cleanup EXIT INT TERM

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$run/mosquitto.conf"
mosquitto -c "$run/mosquitto.conf" > "$run/mosquitto.log" 2>&1 & pids+=($!)
sleep 0.5
"$root/build/firmware-sim/estate-sim" -c "$root/etc/demo/estate-sim.conf" > "$run/sim.log" 2>&1 & pids+=($!)
sleep 0.5
"$root/build/gateway/estate-gw" -c "$root/etc/demo/estate-gw.conf" \
  --set "mqtt.uri=tcp://127.0.0.1:$port" --set "gateway.data_dir=$run/gw" \
  --set "http.listen=127.0.0.1:$http_port" > "$run/gw.log" 2>&1 & pids+=($!)

cat <<TXT
estate-gw demo
  broker:   tcp://127.0.0.1:$port   (mosquitto_sub -p $port -t '$prefix/#' -v)
  console:  http://127.0.0.1:$http_port/   users: frontdesk/front123, engineer/eng123,
            supervisor/super123, viewer/view123
  data:     $run/gw (SQLite); logs: $run/gw.log, $run/sim.log
  operator: build/gateway/estate-ctl -c etc/demo/estate-gw.conf --set gateway.data_dir=$run/gw inventory
Showing what the gateway publishes (readings abbreviated)...
TXT
if [ "$duration" -gt 0 ]; then timeout_cmd=(timeout "$duration"); else timeout_cmd=(); fi
"${timeout_cmd[@]}" mosquitto_sub -p "$port" -t "$prefix/#" -v 2>/dev/null | \
  awk '/\/reading /{ if (length($0) > 160) $0 = substr($0, 1, 157) "..."; } { print; fflush(); }' || true
