"""A real SMTP server for the alert delivery tests, on loopback only.

Usage: smtp_sink.py (PORT | fd:N) DIR

Accepts mail on 127.0.0.1:PORT, or on the bound socket inherited as
descriptor N (the test held the port until now; see test-support/src/ports.rs),
with aiosmtpd and writes each accepted message
to DIR as <n>.json (decoded subject, threading headers, text and HTML parts)
next to <n>.eml (the raw bytes). The file DIR/mode, read for every message,
decides the answer: absent or "ok" accepts, "4xx" answers 451 (try again
later), "5xx" answers 550 (rejected for good). Prints "READY" once listening.
"""

import email
import email.policy
import json
import os
import signal
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class InheritedSocketController(Controller):
    """aiosmtpd's controller on a socket this process inherited, bound already."""

    def __init__(self, handler, sock):
        self.sock = sock
        host, port = sock.getsockname()
        super().__init__(handler, hostname=host, port=port)

    def _create_server(self):
        return self.loop.create_server(
            self._factory_invoker, sock=self.sock, ssl=self.ssl_context
        )


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    def mode(self):
        try:
            with open(os.path.join(self.directory, "mode")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return "ok"

    async def handle_DATA(self, server, session, envelope):
        mode = self.mode()
        if mode == "4xx":
            return "451 4.3.0 Mailbox busy, try again later"
        if mode == "5xx":
            return "550 5.7.1 Recipient rejected by policy"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        parsed = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["Subject"]),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "message_id": str(message["Message-ID"]),
            "in_reply_to": message["In-Reply-To"] and str(message["In-Reply-To"]),
            "references": message["References"] and str(message["References"]),
            "content_type": message.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.directory, f"{n:04d}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.content)
        # Write then rename, so the test never reads half a file.
        with open(base + ".tmp", "w") as f:
            json.dump(parsed, f)
        os.rename(base + ".tmp", base + ".json")
        return "250 2.0.0 Message accepted"


def main():
    where, directory = sys.argv[1], sys.argv[2]
    if where.startswith("fd:"):
        sock = socket.socket(fileno=int(where[3:]))
        sock.listen(100)
        controller = InheritedSocketController(Sink(directory), sock)
    else:
        controller = Controller(Sink(directory), hostname="127.0.0.1", port=int(where))
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
