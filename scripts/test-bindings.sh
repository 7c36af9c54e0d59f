#!/usr/bin/env bash
# Tests across the FFI boundary: generates the Python, Kotlin and Swift bindings from the
# built lanyard-ffi library, runs the Python (pytest) and Kotlin (kotlinc + JVM) suites
# against a real lanyard-server, and checks the Swift sources, header and modulemap an
# XCFramework needs. Called by scripts/test.sh after `cargo test`; needs the tools
# scripts/install-test-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Same feature set as `cargo test --workspace`, so nothing is rebuilt.
cargo build --workspace --locked --quiet
LIB=target/debug/liblanyard_ffi.so
STATIC=target/debug/liblanyard_ffi.a
BINDGEN=target/debug/uniffi-bindgen
OUT=target/bindings
rm -rf "$OUT"
mkdir -p "$OUT"
export LANYARD_SERVER_BIN="$PWD/target/debug/lanyard-server"

echo "==> Python bindings: generate, pytest against a real server"
"$BINDGEN" generate --library "$LIB" --language python --out-dir "$OUT/python" >/dev/null
cp "$LIB" "$OUT/python/"
LANYARD_PY_BINDINGS="$PWD/$OUT/python" python3 -m pytest -q -p no:cacheprovider bindings/tests/python

echo "==> Kotlin bindings: generate, compile with kotlinc, run on the JVM"
KOTLIN=.tools/kotlin/node_modules/kotlin-compiler
JNA=/usr/share/java/jna.jar
"$BINDGEN" generate --no-format --library "$LIB" --language kotlin --out-dir "$OUT/kotlin" >/dev/null
"$KOTLIN/bin/kotlinc" -nowarn "$OUT/kotlin/org/lanyard/ffi/lanyard_ffi.kt" \
    bindings/tests/kotlin/LockerAgentTest.kt -cp "$JNA" -d "$OUT/kotlin/test.jar"
java -Djna.library.path="$PWD/target/debug" \
    -cp "$OUT/kotlin/test.jar:$JNA:$KOTLIN/lib/kotlin-stdlib.jar" LockerAgentTestKt

echo "==> Swift bindings: sources, header and modulemap for the XCFramework"
SWIFT_BINDGEN=target/debug/uniffi-bindgen-swift
"$SWIFT_BINDGEN" "$STATIC" "$OUT/swift/Sources" --swift-sources >/dev/null
"$SWIFT_BINDGEN" "$STATIC" "$OUT/swift/Headers" --headers >/dev/null
"$SWIFT_BINDGEN" "$STATIC" "$OUT/swift/Headers" --modulemap --module-name LanyardFFI \
    --modulemap-filename module.modulemap >/dev/null
python3 scripts/check_swift_bindings.py "$OUT/swift" "$STATIC" ios-shim/Sources/LanyardKit
