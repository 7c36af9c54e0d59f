#!/usr/bin/env bash
# Builds LanyardFFI.xcframework (static libraries for iPhone and the Apple-silicon
# simulator) and the generated Swift API in Sources/LanyardCore. Runs on macOS with Xcode
# and rustup; see docs/ios.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHIM=ios-shim
PROFILE=${PROFILE:-ios}
TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim)

if [ "$(uname)" != "Darwin" ]; then
    echo "build-xcframework.sh needs macOS (xcodebuild); on Linux, scripts/test-bindings.sh generates and checks the Swift sources" >&2
    exit 1
fi
rustup target add "${TARGETS[@]}"
for t in "${TARGETS[@]}"; do
    cargo build --locked -p lanyard-ffi --profile "$PROFILE" --target "$t"
done

# The Swift sources, header and modulemap come from the built library itself (library
# mode), so they always match the symbols in it. The bindgen is a host tool.
cargo build --locked -p uniffi-bindgen --release
LIB=target/aarch64-apple-ios/$PROFILE/liblanyard_ffi.a
GEN=target/release/uniffi-bindgen-swift
WORK=target/xcframework
rm -rf "$WORK" "$SHIM/LanyardFFI.xcframework" "$SHIM/Sources/LanyardCore"
mkdir -p "$WORK/Headers" "$SHIM/Sources/LanyardCore"
"$GEN" "$LIB" "$SHIM/Sources/LanyardCore" --swift-sources
"$GEN" "$LIB" "$WORK/Headers" --headers
"$GEN" "$LIB" "$WORK/Headers" --modulemap --module-name LanyardFFI --modulemap-filename module.modulemap

xcodebuild -create-xcframework \
    -library "target/aarch64-apple-ios/$PROFILE/liblanyard_ffi.a" -headers "$WORK/Headers" \
    -library "target/aarch64-apple-ios-sim/$PROFILE/liblanyard_ffi.a" -headers "$WORK/Headers" \
    -output "$SHIM/LanyardFFI.xcframework"
echo "built $SHIM/LanyardFFI.xcframework and $SHIM/Sources/LanyardCore"
