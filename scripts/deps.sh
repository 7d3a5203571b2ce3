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
# promtool (in Debian's prometheus, which brings a whole Prometheus server,
# so only on request): tests/integration/test_metrics.py then checks /metrics
# with it too (it always runs its own strict format checker), and
# etc/prometheus/*.yml can be checked with promtool check config/rules.
if [ "${ESTATE_PROMTOOL:-0}" = 1 ]; then
  packages+=(prometheus)
fi
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
