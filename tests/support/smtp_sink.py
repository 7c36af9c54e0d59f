"""A local SMTP sink for the end-to-end tests: accepts every message on 127.0.0.1 and
writes each as an .eml file (envelope recipients in a header) into the given folder.
Prints "ready <port>" once listening. Runs until killed."""

import socket
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class Store:
    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = self.folder / f"{self.count:04}.eml"
        tmp = name.with_suffix(".tmp")
        rcpt = ", ".join(envelope.rcpt_tos)
        tmp.write_bytes(b"X-Envelope-To: " + rcpt.encode() + b"\r\n" + envelope.content)
        tmp.rename(name)
        return "250 Message accepted"


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    # aiosmtpd's controller checks its server by connecting to the port it was given,
    # so it needs a real one: ask the OS for a free port first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Store(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"ready {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
