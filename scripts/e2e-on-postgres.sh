#!/usr/bin/env bash
# Runs the end-to-end suite again with every test server on PostgreSQL: the same test
# binaries `cargo test --workspace` built (asking cargo for them with the workspace's
# feature set, so nothing is rebuilt), each test server with a database of its own in
# one throw-away cluster (scripts/with-postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t BINARIES < <(
    cargo test --workspace --locked --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    if "/tests/tests/" in t["src_path"] and "test" in t["kind"]:
        print(m["executable"])
'
)
[ "${#BINARIES[@]}" -gt 0 ] || { echo "no end-to-end test binaries found" >&2; exit 1; }

LIST=$(mktemp)
trap 'rm -f "$LIST"' EXIT
printf '%s\n' "${BINARIES[@]}" >"$LIST"
export LANYARD_TEST_DATABASE=postgres
# Run from the test crate's directory, as cargo runs them.
bash scripts/with-postgres.sh bash -c '
    failed=0
    cd tests
    while read -r bin; do
        echo "--- $(basename "$bin") on PostgreSQL"
        "$bin" --quiet || failed=1
    done <"$0"
    exit $failed
' "$LIST"
