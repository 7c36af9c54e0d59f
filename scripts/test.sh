#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test in the workspace.
# This is the README's test command; .ci/run calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# The e2e tests send email to a real local SMTP sink (aiosmtpd, from PyPI).
if ! python3 -c "import aiosmtpd" 2>/dev/null; then
    echo "==> installing aiosmtpd (SMTP sink for the email tests)"
    python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
fi

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked
