"""Fixtures for the Python binding tests: a real lanyard-server on port 0 and the
generated bindings (directory in LANYARD_PY_BINDINGS, made by scripts/test-bindings.sh)."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

BINDINGS = os.environ.get("LANYARD_PY_BINDINGS")
SERVER_BIN = os.environ.get("LANYARD_SERVER_BIN")
if not BINDINGS or not SERVER_BIN:
    raise RuntimeError("run through scripts/test-bindings.sh (LANYARD_PY_BINDINGS, LANYARD_SERVER_BIN)")
sys.path.insert(0, BINDINGS)


class Admin:
    """The admin API over plain HTTP (urllib: no extra packages)."""

    def __init__(self, base, token):
        self.base = base
        self.token = token

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def post(self, path, body):
        status, value = self.call("POST", path, body)
        assert status < 300, (path, status, value)
        return value

    def get(self, path):
        status, value = self.call("GET", path)
        assert status == 200, (path, status, value)
        return value

    def until(self, path, predicate, timeout=15.0):
        """Polls `path` (bounded) until `predicate(value)` holds; the server has no
        push channel to the test, so this is the signal."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.get(path)
            if predicate(value):
                return value
            time.sleep(0.05)
        raise AssertionError(f"{path} never matched; last value {value}")


@pytest.fixture(scope="session")
def server():
    """A real lanyard-server in a temporary data directory, listening on port 0."""
    data = tempfile.mkdtemp(prefix="lanyard-py-server-")
    token = subprocess.run(
        [SERVER_BIN, "token", "create", "--role", "admin", "--data-dir", data],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1].strip()
    proc = subprocess.Popen(
        [SERVER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    base = None
    # The server prints its bound address once it listens: that line is the signal.
    for line in proc.stdout:
        if "listening on " in line:
            base = line.split("listening on ", 1)[1].strip()
            break
    assert base, "server did not start"
    # Keep draining stdout so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    yield Admin(base, token)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ffi():
    import lanyard_ffi

    return lanyard_ffi
