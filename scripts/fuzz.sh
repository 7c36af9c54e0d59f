#!/usr/bin/env bash
# Short runs of the cargo-fuzz targets, one per decoder that takes outside input (sync
# and authorize bodies, the NanoMDM webhook, CSV imports, profile XML, placeholders).
# Part of the test command; docs/BENCHMARKS.md records a long run.
#   FUZZ_SECS   seconds per target (default 10: the cold build is most of the cost)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECS:-10}"

# The fuzz crate is its own workspace: start from the main lock file so it builds the
# same versions the suite tested (cargo adds only libfuzzer-sys and its few deps).
cp ../Cargo.lock Cargo.lock
echo "==> cargo fuzz build (nightly, no sanitizer: the code under test is safe Rust, a panic is the finding)"
cargo +nightly fuzz build -s none

for target in $(cargo +nightly fuzz list); do
    corpus="$(mktemp -d)"
    if [ -d "seeds/$target" ]; then cp "seeds/$target"/* "$corpus"/; fi
    if [ "$target" = nanomdm_webhook ]; then
        # NanoMDM's recorded webhook bodies, as it sent them.
        python3 - "$corpus" <<'PY'
import json, pathlib, sys
posts = pathlib.Path("../../shared/reference/nanomdm/captures/webhook-posts.json")
if posts.exists():
    for i, p in enumerate(json.loads(posts.read_text())):
        pathlib.Path(sys.argv[1], f"capture-{i}.json").write_text(p["body"])
PY
    fi
    echo "==> fuzz $target for ${secs}s"
    if ! cargo +nightly fuzz run -s none "$target" "$corpus" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        2> "$corpus/log"; then
        tail -40 "$corpus/log"
        echo "fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^stat::number_of_executed_units|^Done" "$corpus/log" || true
    rm -rf "$corpus"
done
