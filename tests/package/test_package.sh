#!/usr/bin/env bash
# test_package.sh - builds the Debian packages from a copy of the tree,
# installs them on this machine, checks the installed default config, runs
# the installed daemon as _estate-gw (setpriv: systemd need not be PID 1)
# against the demo simulator and a loopback mosquitto until readings arrive
# over MQTT, then removes and purges and checks what is left.
# Needs root and the packages of scripts/deps.sh. Usage: test_package.sh [WORKDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/estate-package.XXXXXX)}
mkdir -p "$work"
[ "$(id -u)" = 0 ] || { echo "test_package: needs root (installs packages)" >&2; exit 1; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "test_package: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "build the packages (dpkg-buildpackage in a copy of the tree)"
version=$(sed -n '1s/.*(\(.*\)).*/\1/p' "$root/debian/changelog")
src="$work/src/estate-gw-$version"
rm -rf "$work/src" && mkdir -p "$src"
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -cf - -T - ) | tar -xf - -C "$src"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; fail "dpkg-buildpackage (log: $work/build.log)"; }
arch=$(dpkg --print-architecture)
gw_deb="$work/src/estate-gw_${version}_${arch}.deb"
sim_deb="$work/src/estate-sim_${version}_${arch}.deb"
[ -f "$gw_deb" ] && [ -f "$sim_deb" ] || fail "no packages in $work/src"

step "lintian"
lintian --fail-on error "$work/src/estate-gw_${version}_${arch}.changes" | tee "$work/lintian.log" ||
  fail "lintian reports errors"

step "install"
dpkg -i "$gw_deb" "$sim_deb" > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i"; }
for path in /usr/sbin/estate-gw /usr/bin/estate-ctl /usr/bin/estate-sim /etc/estate-gw/estate-gw.conf \
            /usr/share/estate-gw/console/index.html /usr/share/man/man5/estate-gw.conf.5.gz; do
  [ -e "$path" ] || fail "$path is not installed"
done
dpkg-query -W -f='${Conffiles}\n' estate-gw | grep -q '/etc/estate-gw/estate-gw.conf' ||
  fail "/etc/estate-gw/estate-gw.conf is not a conffile"
getent passwd _estate-gw >/dev/null || fail "no user _estate-gw"
id -nG _estate-gw | grep -qw dialout || fail "_estate-gw is not in dialout"
[ "$(stat -c %U /var/lib/estate-gw)" = _estate-gw ] || fail "/var/lib/estate-gw is not _estate-gw's"
for exe in /usr/sbin/estate-gw /usr/bin/estate-ctl /usr/bin/estate-sim; do
  if strings "$exe" | grep -qF "$root"; then fail "$exe contains the source path $root"; fi
done
dpkg -L estate-gw estate-sim | sort > "$work/files.txt"

step "the installed default config passes --check-config"
[ "$(/usr/sbin/estate-gw -c /etc/estate-gw/estate-gw.conf --check-config)" = OK ] ||
  fail "--check-config on /etc/estate-gw/estate-gw.conf"

step "run the installed daemon as _estate-gw against the simulator and mosquitto"
run="$work/run"
rm -rf "$run" && mkdir -p "$run/conf"
cp "$root/etc/demo/estate-gw.conf" "$root/etc/demo/users.conf" "$root/etc/demo/estate-sim.conf" "$run/conf/"
chmod -R a+rX "$work"
mqtt_port=$(free_port)
http_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$run/mosquitto.conf"
mosquitto -c "$run/mosquitto.conf" > "$run/mosquitto.log" 2>&1 & pids+=($!)
/usr/bin/estate-sim -c "$run/conf/estate-sim.conf" > "$run/sim.log" 2>&1 & pids+=($!)
sleep 0.5
prefix="estate/sunshine-garden/gw1"
timeout 30 mosquitto_sub -p "$mqtt_port" -t "$prefix/meters/+/reading" -C 3 -v > "$run/readings.txt" &
sub_pid=$!
sleep 0.3
setpriv --reuid _estate-gw --regid _estate-gw --init-groups \
  /usr/sbin/estate-gw -c "$run/conf/estate-gw.conf" --set "gateway.data_dir=/var/lib/estate-gw" \
  --set "mqtt.uri=tcp://127.0.0.1:$mqtt_port" --set "http.listen=127.0.0.1:$http_port" \
  > "$run/gw.log" 2>&1 & gw_pid=$!
pids+=($gw_pid)
wait "$sub_pid" || { tail -20 "$run/gw.log"; fail "no readings on MQTT within 30 s"; }
[ "$(wc -l < "$run/readings.txt")" -ge 3 ] || fail "fewer than 3 readings"
echo "readings: $(cut -c1-100 "$run/readings.txt" | head -1) ..."
curl -fsS -o "$run/index.html" "http://127.0.0.1:$http_port/" ||
  fail "the console does not answer on 127.0.0.1:$http_port"
cmp -s "$run/index.html" /usr/share/estate-gw/console/index.html ||
  fail "the console is not served from /usr/share/estate-gw/console"
ls /var/lib/estate-gw/*.db >/dev/null 2>&1 || ls /var/lib/estate-gw | grep -q . ||
  fail "nothing in /var/lib/estate-gw"
bad=$(find /var/lib/estate-gw -mindepth 1 ! -user _estate-gw)
[ -z "$bad" ] || fail "files in /var/lib/estate-gw not owned by _estate-gw: $bad"
kill -TERM "$gw_pid"
wait "$gw_pid" || fail "estate-gw did not exit cleanly on SIGTERM (log: $run/gw.log)"

step "journald: with stderr on the journal's stream, <N> prefixes and no timestamp"
# JOURNAL_STREAM names stderr's device:inode, as systemd sets it for the journal.
journal_log="$run/journal.log"
(
  exec 2>"$journal_log"
  JOURNAL_STREAM=$(stat -L -c '%d:%i' /proc/self/fd/2) \
    timeout -s TERM 2 /usr/sbin/estate-gw -c "$run/conf/estate-gw.conf" \
      --set "gateway.data_dir=$run/journal-data" --set "mqtt.uri=tcp://127.0.0.1:$mqtt_port" \
      --set "http.listen=127.0.0.1:$(free_port)" || true
)
grep -q '^<6>info estate-gw .* starting' "$journal_log" || { cat "$journal_log"; fail "no <6> prefix in the journal format"; }
if grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$journal_log"; then fail "timestamps in the journal format"; fi
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.* info estate-gw .* starting' "$run/gw.log" ||
  fail "plain stderr lost its timestamps"

step "upgrade (reinstall) keeps the edited config and the data"
echo "# edited by the package test" >> /etc/estate-gw/estate-gw.conf
db_before=$(find /var/lib/estate-gw -type f | sort)
dpkg -i "$gw_deb" "$sim_deb" > "$work/upgrade.log" 2>&1 < /dev/null || { cat "$work/upgrade.log"; fail "reinstall"; }
grep -q "edited by the package test" /etc/estate-gw/estate-gw.conf || fail "the upgrade replaced the edited config"
[ "$(find /var/lib/estate-gw -type f | sort)" = "$db_before" ] || fail "the upgrade changed /var/lib/estate-gw"

step "remove keeps config and data; purge removes them"
dpkg --remove estate-sim estate-gw > "$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg --remove"; }
[ -f /etc/estate-gw/estate-gw.conf ] || fail "remove dropped the conffile"
[ -d /var/lib/estate-gw ] && [ -n "$(ls -A /var/lib/estate-gw)" ] || fail "remove dropped the data"
[ ! -e /usr/sbin/estate-gw ] || fail "remove left /usr/sbin/estate-gw"
dpkg --purge estate-sim estate-gw > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
[ ! -e /var/lib/estate-gw ] || fail "purge left /var/lib/estate-gw"
[ ! -e /etc/estate-gw ] || fail "purge left /etc/estate-gw"
left=()
while read -r path; do
  [ -d "$path" ] && continue          # shared directories (/usr/bin, /usr/share/man/...)
  [ -e "$path" ] || [ -L "$path" ] && left+=("$path")
done < "$work/files.txt"
[ ${#left[@]} -eq 0 ] || fail "purge left: ${left[*]}"
for dir in /usr/share/estate-gw /usr/share/doc/estate-gw /usr/share/doc/estate-sim; do
  [ ! -e "$dir" ] || fail "purge left $dir"
done
# Kept on purge by design (Debian practice): the system user _estate-gw.
echo "test_package: the package builds, installs, runs as _estate-gw, and purges cleanly"
echo "1 passed, 0 failed"
