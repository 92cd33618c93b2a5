#!/usr/bin/env python
"""A local HTTP endpoint standing in for the notification services (generic webhook, ntfy, Gotify).

Every POST is answered 200 and appended to a JSON Lines file as
{"time", "path", "headers", "body" (parsed JSON, or null), "raw"}. Listens on 127.0.0.1 only.

  webhook_receiver.py --out FILE [--port 0] [--port-file FILE]

With --port 0 (the default) the OS picks a free port; it is written to --port-file once listening.
A path starting with /fail answers 500 (to test that a failed notification is only a warning).
"""
import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOCK = threading.Lock()


def make_handler(out: Path):
    class Handler(BaseHTTPRequestHandler):
        server_version = "pbs-patch-webhook-receiver/1"

        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            record = {"time": time.time(), "path": self.path, "headers": dict(self.headers.items()),
                      "body": body, "raw": raw if body is None else None}
            with LOCK, out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            status = 500 if self.path.startswith("/fail") else 200
            reply = json.dumps({"ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_GET(self):  # noqa: N802
            reply = b"pbs_patch webhook receiver: POST here\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, fmt, *args):
            sys.stderr.write("webhook-receiver: %s\n" % (fmt % args))

    return Handler


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="JSON Lines file receiving every POST")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    a = ap.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.touch()
    httpd = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(a.out))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown, daemon=True).start())
    if a.port_file:
        tmp = a.port_file.with_suffix(".tmp")
        tmp.write_text("%d\n" % httpd.server_address[1])
        tmp.replace(a.port_file)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
