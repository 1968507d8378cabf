#!/usr/bin/env bash
# Make sure the servers the test suite starts are installed: redis-server, PostgreSQL, nats-server,
# the headless browser of the console tests (Debian's chromium + chromium-driver), and node (the
# schema patterns are compiled as JavaScript regexes in tests/server/test_id_rules.py).
# Installs them with apt-get when missing and we are root; otherwise fails loudly.
set -euo pipefail

have_pg() {
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; } || missing+=(nats-server)
have_pg || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v node >/dev/null 2>&1 || missing+=(nodejs)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "test servers missing: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}" >&2
else
  echo "install them (e.g. sudo apt-get install ${missing[*]}) and run 'make test' again" >&2
  exit 1
fi
