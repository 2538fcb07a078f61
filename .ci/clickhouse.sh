#!/usr/bin/env bash
# Make a ClickHouse server answer on 127.0.0.1:9000 (native protocol) for the usage-store tests.
#
# Installs Debian's clickhouse-server (18.16 on bookworm) when missing and, since CI containers
# have no systemd, runs the server binary in the background with the package's own config,
# logging to a file. Idempotent: does nothing when a server already answers. Quiet on success
# (prints only the variable to export); loud, with the log tail, on failure.
#
#   eval "$(.ci/clickhouse.sh)"   # sets METERBILL_TEST_CLICKHOUSE_URL
set -euo pipefail

HOST=127.0.0.1
PORT=9000
CONFIG=/etc/clickhouse-server/config.xml
LOG_DIR=${CLICKHOUSE_LOG_DIR:-/var/log/clickhouse-server}
RUN_LOG=$LOG_DIR/meterbill-ci.log
WAIT_SECONDS=${CLICKHOUSE_WAIT_SECONDS:-60}
URL="clickhouse://$HOST:$PORT/default"

fail() {
  echo "[clickhouse] ERROR: $*" >&2
  for f in "$RUN_LOG" "$LOG_DIR/clickhouse-server.err.log" "$LOG_DIR/clickhouse-server.log"; do
    if [ -s "$f" ]; then
      echo "[clickhouse] --- last lines of $f ---" >&2
      tail -n 40 "$f" >&2
    fi
  done
  exit 1
}

answers() {
  # The client speaks the native protocol, so this checks exactly what the tests use.
  clickhouse-client --host "$HOST" --port "$PORT" --query "SELECT 1" >/dev/null 2>&1
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

if ! command -v clickhouse-server >/dev/null 2>&1 || ! command -v clickhouse-client >/dev/null 2>&1
then
  APT_LOG=/tmp/clickhouse-apt.log
  $SUDO apt-get update -qq >"$APT_LOG" 2>&1 \
    || { tail -n 40 "$APT_LOG" >&2; fail "apt-get update failed"; }
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    clickhouse-server clickhouse-client >>"$APT_LOG" 2>&1 \
    || { tail -n 40 "$APT_LOG" >&2; fail "apt-get install clickhouse-server failed"; }
fi

if ! answers; then
  [ -f "$CONFIG" ] || fail "$CONFIG not found; is clickhouse-server installed?"
  $SUDO mkdir -p "$LOG_DIR" /var/lib/clickhouse
  # The package's postinst makes a `clickhouse` user; run as it when it exists so the data
  # directory keeps the owner the package expects, else as root.
  RUN_AS=root
  if id clickhouse >/dev/null 2>&1; then
    RUN_AS=clickhouse
    $SUDO chown -R clickhouse:clickhouse "$LOG_DIR" /var/lib/clickhouse
  fi
  # Start from / (no stray relative paths). setsid: the server outlives this script and the CI
  # step; every stream goes to the log so `$(.ci/clickhouse.sh)` does not wait on the server.
  cd /
  $SUDO setsid runuser -u "$RUN_AS" -- \
    clickhouse-server --config-file="$CONFIG" >"$RUN_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 "$WAIT_SECONDS"); do
    answers && break
    sleep 1
  done
  answers || fail "clickhouse-server did not answer on $HOST:$PORT within ${WAIT_SECONDS}s"
fi

echo "export METERBILL_TEST_CLICKHOUSE_URL=$URL"
