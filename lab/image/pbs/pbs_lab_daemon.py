#!/usr/bin/env python
"""Lab stand-in for the PBS daemons. Installed twice by the proxmox-backup-server lab package:
  proxmox-backup-api    API daemon, 127.0.0.1:82 (plain HTTP), Type=notify
  proxmox-backup-proxy  public daemon, HTTPS on :8007; forwards /api2/ to the API daemon, so API calls fail
                        when proxmox-backup.service is down (the lab's contract: fail closed)
Knobs (files in /etc/proxmox-backup, read at each start):
  lab-fail-start-<name>       that daemon fails at start
  lab-slow-start-<name>       holds N: that daemon takes N s to start (the unit is 'activating' meanwhile), then
                              listens and tells systemd it is ready
  lab-not-listening-<name>    that daemon starts and reports ready, but listens on no port (units active,
                              nothing answers on 8007)"""
import http.client
import http.server
import json
import os
import signal
import socketserver
import ssl
import sys
import urllib.parse

sys.path.insert(0, "/usr/lib/x86_64-linux-gnu/proxmox-backup")
import pbs_lab_common as C  # noqa: E402

NAME = os.path.basename(sys.argv[0])
REFUSED = "error trying to connect: tcp connect error: Connection refused (os error 111)"


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "proxmox-backup-lab"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            if NAME == "proxmox-backup-proxy":
                self.proxy_get()
            else:
                self.api_get()
        except BrokenPipeError:
            pass
        except Exception as e:  # the stand-in must answer, never hang
            self.reply(500, {"data": None, "message": str(e)})

    def proxy_get(self):
        if not self.path.startswith("/api2/"):
            self.reply(200, b"<html><head><title>Proxmox Backup Server (lab stand-in)</title></head></html>\n",
                       "text/html")
            return
        try:
            conn = http.client.HTTPConnection(*C.API_ADDR, timeout=30)
            conn.request("GET", self.path)
            r = conn.getresponse()
            body = r.read()
            self.reply(r.status, body)
        except OSError:
            self.reply(400, {"data": None, "message": REFUSED})

    def api_get(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        if parts[:2] != ["api2", "json"]:
            return self.reply(404, {"data": None, "message": "Path not found."})
        parts = parts[2:]
        if parts == ["version"]:
            v, _sep, _release = C.PKG_VERSION.partition("-")
            major_minor, _dot, patch = v.rpartition(".")
            return self.reply(200, {"data": {"version": major_minor, "release": patch, "repoid": "lab"}})
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "tasks":
            running = q.get("running", "0") in ("1", "true", "yes", "on")
            try:
                limit = int(q.get("limit", "50"))
                start = int(q.get("start", "0"))
            except ValueError:
                return self.reply(400, {"data": None, "message": "parameter verification failed"})
            items = C.task_list(running, limit, start)
            return self.reply(200, {"data": items, "total": len(items)})
        if parts == ["config", "datastore"]:
            return self.reply(200, {"data": C.read_datastores()})
        if len(parts) == 4 and parts[:2] == ["admin", "datastore"] and parts[3] == "active-operations":
            # src/api2/admin/datastore.rs get_active_operations
            if not any(d["name"] == parts[2] for d in C.read_datastores()):
                return self.reply(400, {"data": None, "message": "no such datastore '%s'\n" % parts[2]})
            return self.reply(200, {"data": C.get_active_operations(parts[2])})
        return self.reply(404, {"data": None, "message": "Path not found."})


def main():
    if os.path.exists("/etc/proxmox-backup/lab-fail-start-" + NAME):
        print("%s: lab fault knob: refusing to start" % NAME, file=sys.stderr)
        return 1
    knob = "/etc/proxmox-backup/lab-%s-" + NAME
    # the slow-start and not-listening knobs act on a start (a boot), not on a reload (the upgrade's postinst)
    reexec = os.environ.pop("PBS_LAB_REEXEC", "") == "1"
    if os.path.exists(knob % "slow-start") and not reexec:
        import time
        seconds = int(open(knob % "slow-start").read().strip() or "20")
        C.sd_notify("STATUS=lab fault knob: starting slowly (%d s)" % seconds)
        time.sleep(seconds)  # the daemon's simulated slow start, not a test's wait
    if os.path.exists(knob % "not-listening") and not reexec:
        C.sd_notify("READY=1\nMAINPID=%d\nSTATUS=%s %s running, listening nowhere (lab fault knob)"
                    % (os.getpid(), NAME, C.running_version()))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGHUP, lambda *_: os.execve(sys.argv[0], sys.argv, dict(os.environ, PBS_LAB_REEXEC="1")))
        while True:
            signal.pause()
    if NAME == "proxmox-backup-proxy":
        srv = Server(("0.0.0.0", C.PROXY_PORT), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain("/etc/proxmox-backup/proxy.pem", "/etc/proxmox-backup/proxy.key")
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    else:
        srv = Server(C.API_ADDR, Handler)
        C.update_active()
    import threading
    reload = []

    def on_hup(*_):
        # like the real daemons: a reload re-executes the (possibly upgraded) program in the same PID
        reload.append(1)
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown, daemon=True).start())
    signal.signal(signal.SIGHUP, on_hup)
    C.sd_notify("READY=1\nMAINPID=%d\nSTATUS=%s %s running" % (os.getpid(), NAME, C.running_version()))
    srv.serve_forever()
    srv.server_close()
    if reload:
        os.execve(sys.argv[0], sys.argv, dict(os.environ, PBS_LAB_REEXEC="1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
