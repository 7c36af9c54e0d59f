#!/usr/bin/env bash
# Builds the locker library (lanyard-ffi alone, so no bindgen feature leaks in) for the
# host and prints its size as built and stripped. Usage: scripts/ffi-size.sh [PROFILE]
# (default: ios, the profile build-xcframework.sh ships; try release for comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-ios}
cargo build --locked --quiet -p lanyard-ffi --profile "$PROFILE"
LIB=target/$PROFILE/liblanyard_ffi.so
STRIPPED=$(mktemp)
strip -o "$STRIPPED" "$LIB"
awk -v p="$PROFILE" -v built="$(stat -c %s "$LIB")" -v stripped="$(stat -c %s "$STRIPPED")" \
    -v static="$(stat -c %s "target/$PROFILE/liblanyard_ffi.a")" 'BEGIN {
        printf "profile %s: cdylib %d bytes, stripped %d bytes (%.1f MiB); staticlib %d bytes\n",
            p, built, stripped, stripped / 1048576, static }'
rm -f "$STRIPPED"
