#!/usr/bin/env bash
# The performance record on each backend, one after the other in one run (issue 16):
# SQLite, PostgreSQL with one replica and with two, phones syncing once a minute; then
# phones holding long-polls. Prints one JSON summary per run, labelled. Needs the release
# binaries: cargo build --release -p lanyard-sim -p lanyard-server
#
#   bash scripts/bench-backends.sh            # every run
#   DEVICES=2000 LONG_POLL_DEVICES=10000 bash scripts/bench-backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIM=target/release/lanyard-sim
SERVER=target/release/lanyard-server
DEVICES=${DEVICES:-2000}
LONG_POLL_DEVICES=${LONG_POLL_DEVICES:-10000}
SOAK=(--soak-secs 60 --burst-taps 100 --burst-secs 20 --json)

run() { # label, then the simulator's arguments
    local label=$1
    shift
    echo "==> $label" >&2
    echo "$label: $("$SIM" --server-bin "$SERVER" "$@" | tail -1)"
}

run "sqlite, 1 replica, $DEVICES phones" --devices "$DEVICES" "${SOAK[@]}"
run "sqlite, 1 replica, $LONG_POLL_DEVICES long-polling phones" \
    --devices "$LONG_POLL_DEVICES" --long-poll --sync-interval-secs 20 "${SOAK[@]}"

export LANYARD_PG_DURABLE=1
export SIM SERVER DEVICES LONG_POLL_DEVICES
bash scripts/with-postgres.sh bash -c '
  set -euo pipefail
  SOAK=(--soak-secs 60 --burst-taps 100 --burst-secs 20 --json)
  export LANYARD_KEY_ENCRYPTION_KEY=$("$SERVER" keygen)
  n=0
  pg() { # label, replicas, then the simulator arguments
    local label=$1 replicas=$2
    shift 2
    n=$((n + 1))
    psql -q "$LANYARD_TEST_PG_URL" -c "create database bench$n"
    echo "==> $label" >&2
    # Over TLS, verified against the throw-away cluster's CA, as a site should run.
    echo "$label: $(LANYARD_DATABASE_URL="${LANYARD_TEST_PG_URL%/postgres}/bench$n?sslmode=verify-full&sslrootcert=$LANYARD_TEST_PG_CA" \
      "$SIM" --server-bin "$SERVER" --replicas "$replicas" "$@" | tail -1)"
  }
  pg "postgresql, 1 replica, $DEVICES phones" 1 --devices "$DEVICES" "${SOAK[@]}"
  pg "postgresql, 2 replicas, $DEVICES phones" 2 --devices "$DEVICES" "${SOAK[@]}"
  pg "postgresql, 2 replicas, $LONG_POLL_DEVICES long-polling phones" 2 \
    --devices "$LONG_POLL_DEVICES" --long-poll --sync-interval-secs 20 "${SOAK[@]}"
'
