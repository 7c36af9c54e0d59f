#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent: each tool is
# checked first and installed only when missing, so a warm machine spends no time here.
#   - pytest, aiosmtpd (PyPI): the Python binding tests and the SMTP sink of the e2e tests
#   - schemathesis (PyPI): the OpenAPI conformance run
#   - kotlin-compiler (npm, into .tools/kotlin): compiles the Kotlin binding test
#   - libjna-java (Debian): JNA, which the generated Kotlin bindings load the library with
#   - cargo-fuzz (crates.io) and a nightly toolchain: the short fuzz runs
#   - postgresql (Debian): the server binaries the suite's throw-away cluster runs
#     (scripts/with-postgres.sh; no system service is used)
#   - openssl (Debian, the command-line tool only): makes that cluster's throw-away TLS
#     certificates (the servers use rustls, never OpenSSL)
set -euo pipefail
cd "$(dirname "$0")/.."

pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check "$@"
}
if ! python3 -c "import aiosmtpd" 2>/dev/null; then
    echo "==> installing aiosmtpd (SMTP sink for the email tests)"
    pip_install 'aiosmtpd==1.4.6'
fi
if ! python3 -c "import pytest" 2>/dev/null; then
    echo "==> installing pytest (Python binding tests)"
    pip_install 'pytest==8.3.4'
fi

if ! python3 -m schemathesis.cli --version 2>/dev/null | grep -q '4.32.5'; then
    echo "==> installing schemathesis (OpenAPI conformance)"
    pip_install 'schemathesis==4.32.5'
fi

KOTLIN_DIR=.tools/kotlin
if [ ! -x "$KOTLIN_DIR/node_modules/kotlin-compiler/bin/kotlinc" ]; then
    echo "==> installing kotlin-compiler (Kotlin binding tests)"
    mkdir -p "$KOTLIN_DIR"
    npm install --silent --no-audit --no-fund --prefix "$KOTLIN_DIR" 'kotlin-compiler@2.4.20'
fi

apt_install() {
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq "$@" >/dev/null 2>&1 || {
        $SUDO apt-get update -qq >/dev/null
        $SUDO apt-get install -y -qq "$@" >/dev/null
    }
}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "==> installing postgresql (the suite's throw-away PostgreSQL cluster)"
    # Debian's package may start a system cluster of its own; the suite never uses it.
    apt_install postgresql
fi

if ! command -v openssl >/dev/null 2>&1; then
    echo "==> installing openssl (the tool that makes the test cluster's TLS certificates)"
    apt_install openssl
fi

if [ ! -f /usr/share/java/jna.jar ]; then
    echo "==> installing libjna-java (JNA for the Kotlin bindings)"
    apt_install libjna-java
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> installing the nightly toolchain (cargo fuzz)"
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (the fuzz targets)"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
