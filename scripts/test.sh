#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test in the workspace, and the binding
# tests in Python and Kotlin (plus the generated Swift, checked). This is the README's
# test command; .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# A run from a fresh clone gains nothing from incremental compilation, and its caches
# (gigabytes for this workspace) are what filled CI's disk.
export CARGO_INCREMENTAL=0

# pytest, aiosmtpd, schemathesis, kotlinc, JNA, cargo-fuzz, PostgreSQL: installed only when
# missing.
bash scripts/install-test-deps.sh

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked

echo "==> the end-to-end suite again on PostgreSQL (a throw-away cluster)"
bash scripts/e2e-on-postgres.sh

echo "==> binding tests"
bash scripts/test-bindings.sh

echo "==> schemathesis against the OpenAPI document (every check, 0 failures)"
bash scripts/schemathesis.sh

echo "==> fuzz targets (short runs)"
bash scripts/fuzz.sh
