#!/usr/bin/env bash
# deps.sh - installs every Debian package estate-gw needs to build, test and
# run its demo. Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libpaho-mqtt-dev libmodbus-dev libsqlite3-dev sqlite3 libconfig-dev
  libcjson-dev libmicrohttpd-dev libssl-dev libcmocka-dev libcurl4-openssl-dev
  mosquitto mosquitto-clients socat openssl
  python3 python3-paho-mqtt python3-aiosmtpd
  libsystemd-dev scdoc
)
# Debian packaging (debian/, tests/package/test_package.sh).
packages+=(debhelper dpkg-dev fakeroot lintian systemd adduser curl)
# promtool, for tests/integration/test_metrics.py and test_demo_script.py
# (promtool check metrics on /metrics) and for checking etc/prometheus/*.yml
# (promtool check config/rules). Debian ships it only inside prometheus, a
# whole Prometheus server: it is installed with its service kept from
# starting (see install_without_starting_services) and then disabled, so no
# server holds port 9090 or scrapes anything on a test machine.
packages+=(prometheus)
# The system's time-zone database: the gateway's timezone is any IANA name.
packages+=(tzdata)
# Browser tests of the console: Debian's chromium, CJK fonts for the Chinese
# pages, and Node.js/npm (playwright-core comes from the npm registry).
if [ "${ESTATE_BROWSER_TESTS:-1}" = 1 ]; then
  packages+=(chromium fonts-noto-cjk)
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# Packages with a service (prometheus, mosquitto) must not start it: the
# tests run their own programs on free loopback ports. invoke-rc.d and
# deb-systemd-invoke ask /usr/sbin/policy-rc.d, and exit code 101 means
# "not allowed"; a policy already in place (a container's) is left as it is.
policy=/usr/sbin/policy-rc.d
install_without_starting_services() {
  if [ -e "$policy" ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    return
  fi
  printf '#!/bin/sh\n# deps.sh: no service starts while it installs packages\nexit 101\n' |
    $SUDO tee "$policy" >/dev/null
  trap '$SUDO rm -f "$policy"' EXIT
  $SUDO chmod 755 "$policy"
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

$SUDO apt-get update -qq
install_without_starting_services "${missing[@]}"

# prometheus is here for promtool only: its server stays off at boot too
# (systemctl works on the unit files without a running systemd as well).
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  else
    $SUDO systemctl disable prometheus.service >/dev/null 2>&1 || true
  fi
fi
