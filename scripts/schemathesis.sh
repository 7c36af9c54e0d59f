#!/usr/bin/env bash
# Schemathesis (PyPI) against the server's own OpenAPI document, every check: a real
# server in a temp dir on a free port, an admin token, and the document it serves.
# scripts/schemathesis.toml lists the few operations whose rules JSON Schema cannot
# express, and why. Extra arguments go to `schemathesis run` (e.g. --seed 7).
#   ST_EXAMPLES  examples per operation (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${ST_EXAMPLES:-30}"
bin=target/debug/lanyard-server
cargo build -p lanyard-server --locked --quiet
dir="$(mktemp -d)"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
token="$("$bin" token create --role admin --data-dir "$dir/data" 2>/dev/null)"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" > "$dir/out" 2> "$dir/log" &
pid=$!
for _ in $(seq 100); do
    grep -q listening "$dir/out" 2>/dev/null && break
    sleep 0.1
done
url="$(grep -o 'http://[0-9.:]*' "$dir/out" | head -1)"
[ -n "$url" ] || { cat "$dir/log"; echo "the server did not start" >&2; exit 1; }
echo "==> schemathesis against $url/api/v1/openapi.json"
python3 -m schemathesis.cli --config-file scripts/schemathesis.toml run "$url/api/v1/openapi.json" \
    --checks all \
    --header "Authorization: Bearer $token" \
    --max-examples "$examples" \
    --seed 1 \
    --no-color \
    --report junit --report-dir "$dir/report" \
    "$@"
