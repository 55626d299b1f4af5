#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The validator and notify receiver that tests/integration/t_webhook.sh starts: python3's
standard library only.  Every POST is checked as docs/webhooks.md says a receiver must
(X-Scep-Signature = sha256=HMAC-SHA256(secret, "<X-Scep-Timestamp>.<body>"), timestamp
within 300 s of now) and recorded as one JSON line in RECORD (path, whether the signature
held, the document).  The path picks the answer:

  /allow /deny              {"allow": true} / {"allow": false, "reason": ...}
  /identity                 an allow that supplies identity values
  /sleep                    answers after SLEEP seconds (a validator past its timeout)
  /garbage /status500 /big  an unreadable answer, HTTP 500, an answer of 100 KB
  /toggle                   HTTP 503 while the file STATE holds "down", else an allow
  /challenge                allows only when the document's challenge equals the file
                            CHALLENGE (the Intune case: the validator owns the challenge)
  /notify                   204: an event received

Usage: webhook_server.py SECRETFILE RECORD PORTFILE STATE CHALLENGE [SLEEP]
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_FILE, RECORD, PORT_FILE, STATE, CHALLENGE = sys.argv[1:6]
SLEEP = float(sys.argv[6]) if len(sys.argv) > 6 else 3.0
WINDOW = 300
with open(SECRET_FILE, "rb") as f:
    SECRET = f.read().rstrip(b"\r\n")
LOCK = threading.Lock()


def signature_ok(headers, body):
    stamp = headers.get("X-Scep-Timestamp", "")
    given = headers.get("X-Scep-Signature", "")
    if not stamp.isdigit() or abs(int(stamp) - time.time()) > WINDOW:
        return False
    want = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if 0 <= length <= 1 << 20 else b""
        good = signature_ok(self.headers, body)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        with LOCK, open(RECORD, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": self.path, "signature": good, "doc": doc}) + "\n")
        if not good:
            self.answer(401, b'{"allow": false, "reason": "bad signature"}')
            return
        path = self.path
        if path == "/allow":
            self.answer(200, b'{"allow": true}')
        elif path == "/deny":
            self.answer(200, b'{"allow": false, "reason": "device not compliant\\n\\u001b[31m"}')
        elif path == "/identity":
            self.answer(200, json.dumps({
                "allow": True, "reason": "known device",
                "identity": {"CN": "John's iPhone", "rfc822Name": ["john@example.org"],
                             "UPN": "john@corp.example.org"}}).encode())
        elif path == "/sleep":
            time.sleep(SLEEP)
            self.answer(200, b'{"allow": true}')
        elif path == "/garbage":
            self.answer(200, b'{"allow": true, "allow": true}')
        elif path == "/status500":
            self.answer(500, b'{"allow": true}')
        elif path == "/big":
            self.answer(200, b'{"allow": true, "pad": "' + b"x" * 100000 + b'"}')
        elif path == "/toggle":
            with open(STATE, encoding="utf-8") as f:
                down = f.read().strip() == "down"
            self.answer(503 if down else 200, b'{"allow": true}')
        elif path == "/challenge":
            with open(CHALLENGE, encoding="utf-8") as f:
                expected = f.read().strip()
            ok = isinstance(doc, dict) and doc.get("challenge") == expected
            self.answer(200, json.dumps({"allow": ok, "reason": "challenge"}).encode())
        elif path == "/notify":
            self.answer(204, b"")
        else:
            self.answer(404, b"{}")


class Server(ThreadingHTTPServer):
    # the default backlog of 5 overflows under concurrent enrollments, and a dropped SYN
    # costs the sender a 1 s retransmission: the receiver's latency, not the server's
    request_queue_size = 128


def main():
    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(PORT_FILE + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    # renamed when complete, so that the test never reads half a number
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
