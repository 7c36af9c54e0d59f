"""Checks the generated Swift bindings, since Swift cannot be compiled on Linux:
the three artifacts exist and name each other, every FFI function the header declares
is exported by the static library (and every exported one is declared), the API the
iOS shim relies on exists, and the shim implements every host-capability method.

usage: check_swift_bindings.py OUT_DIR LIBRARY.a LANYARDKIT_SOURCES_DIR
"""

import pathlib
import re
import subprocess
import sys

FOREIGN_TRAITS = ["ScreenPresenter", "AppSessions", "SecretStorage", "Notifier", "HostClock"]
# On iOS the agent reads the system clock itself: the shim has no HostClock.
SHIM_IMPLEMENTS = ["ScreenPresenter", "AppSessions", "SecretStorage", "Notifier"]


def fail(msg):
    print(f"swift bindings: {msg}", file=sys.stderr)
    sys.exit(1)


def main(out, lib, shim):
    out, shim = pathlib.Path(out), pathlib.Path(shim)
    swift = out / "Sources" / "LanyardCore.swift"
    header = out / "Headers" / "LanyardFFI.h"
    modulemap = out / "Headers" / "module.modulemap"
    for f in (swift, header, modulemap):
        if not f.is_file() or f.stat().st_size == 0:
            fail(f"{f} was not generated")
    mm = modulemap.read_text()
    if "module LanyardFFI" not in mm or 'header "LanyardFFI.h"' not in mm:
        fail(f"modulemap does not describe LanyardFFI.h:\n{mm}")
    src = swift.read_text()
    # Declarations are sometimes split after the access modifier ("public\nenum").
    flat = re.sub(r"\bpublic\s+", "public ", src)
    if "import LanyardFFI" not in src:
        fail("the Swift sources do not import the LanyardFFI C module")
    for decl in ["open class LockerAgent", "open class SyncHandle", "public enum ApiError",
                 "public enum HostError", "public enum ScreenModel", "public struct AgentStatus"] + [
            f"public protocol {t}" for t in FOREIGN_TRAITS]:
        if decl not in flat:
            fail(f"missing from the Swift sources: {decl}")

    # Header declarations against the library's exported symbols.
    declared = set(re.findall(r"\b((?:uniffi|ffi)_lanyard_ffi_\w+)\s*\(", header.read_text()))
    nm = subprocess.run(["nm", "-g", "--defined-only", lib], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in nm.stdout.splitlines()
                if re.search(r" T (uniffi|ffi)_lanyard_ffi_", line)}
    if not declared:
        fail("the header declares no FFI functions")
    if declared - exported:
        fail(f"declared in the header but not in {lib}: {sorted(declared - exported)[:10]}")
    if exported - declared:
        fail(f"exported by {lib} but not in the header: {sorted(exported - declared)[:10]}")

    # The iOS shim (hand-written Swift) against the generated API.
    shim_src = "\n".join(p.read_text() for p in sorted(shim.rglob("*.swift")))
    if not shim_src:
        fail(f"no Swift sources under {shim}")
    generated_funcs = set(re.findall(r"\bfunc (\w+)\(", src))
    used = set(re.findall(r"(?:\bagent\??|\$0)\.(\w+)\(", shim_src))
    if not used:
        fail("the shim calls nothing on the agent")
    if used - generated_funcs:
        fail(f"the shim calls methods the bindings do not have: {sorted(used - generated_funcs)}")
    for trait in SHIM_IMPLEMENTS:
        block = re.search(r"public protocol %s\b[^{]*\{(.*?)\n\}" % trait, flat, re.S)
        required = set(re.findall(r"\bfunc (\w+)\(", block.group(1))) if block else set()
        if not required:
            fail(f"could not read the methods of {trait}")
        if not re.search(r":\s*(?:[\w, ]*,\s*)?%s\b" % trait, shim_src):
            fail(f"the shim has no type conforming to {trait}")
        missing = {m for m in required if not re.search(r"\bfunc %s\(" % m, shim_src)}
        if missing:
            fail(f"the shim's {trait} lacks {sorted(missing)}")
    print(f"swift bindings: ok ({len(declared)} FFI functions, {len(used)} agent methods used by the shim)")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail(__doc__)
    main(*sys.argv[1:])
