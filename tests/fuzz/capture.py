#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in SCEP server for make-seeds.sh: answers GetCACaps and GetCACert with the
fuzzing PKI (tests/fuzz/pki) and keeps every PKIOperation a real client sends, so that
the seeds are what clients put on the wire.  It never answers a PKIOperation (HTTP 500):
the clients give up after their first message, which is all the seeds need.

    capture.py OUTDIR PORTFILE CACERT_DER       (listens on 127.0.0.1, a free port)

Paths ending in "-get" leave POSTPKIOperation out of the capabilities, so clients send
their message in a GET query; the raw query is kept as well.  Stops after 300 s."""
import base64
import http.server
import os
import sys
import threading
import urllib.parse

outdir, portfile, cacert = sys.argv[1], sys.argv[2], sys.argv[3]
with open(cacert, "rb") as f:
    CACERT = f.read()
lock = threading.Lock()
count = [0]


def keep(kind, data):
    with lock:
        count[0] += 1
        n = count[0]
    with open(os.path.join(outdir, "%s-%03d" % (kind, n)), "wb") as f:
        f.write(data)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # strongSwan's fetcher reads no body from HTTP/1.0 answers

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def scep(self, body):
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        op = params.get("operation", [""])[0]
        if op == "GetCACaps":
            caps = "SHA-256\nSHA-1\nAES\nDES3\nSCEPStandard\nRenewal\n"
            if not path.endswith("-get"):
                caps += "POSTPKIOperation\n"
            self.answer(200, "text/plain", caps.encode())
        elif op == "GetCACert":
            self.answer(200, "application/x-x509-ca-ra-cert", CACERT)
        elif op == "PKIOperation":
            if body is not None:
                keep("post", body)
            else:
                keep("query", query.encode())
                raw = query.split("message=", 1)[-1].split("&", 1)[0]
                text = urllib.parse.unquote(raw).replace("\n", "").replace("\r", "")
                text += "=" * (-len(text) % 4)
                try:
                    keep("get", base64.b64decode(text.replace("-", "+").replace("_", "/")))
                except ValueError:
                    pass
            self.answer(500, "text/plain", b"captured\n")
        else:
            self.answer(404, "text/plain", b"unknown operation\n")

    def do_GET(self):
        self.scep(None)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.scep(self.rfile.read(min(n, 1 << 20)))


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
stop = threading.Timer(300, server.shutdown)
stop.daemon = True
stop.start()
server.serve_forever()
