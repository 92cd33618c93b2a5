"""Minimal QMP and QEMU guest agent (QGA) clients over the lab's unix sockets."""
import json
import random
import socket
import time


class QMPError(Exception):
    pass


class AgentError(Exception):
    """The agent did not answer (not running) or the socket is unusable."""


class AgentCommandError(Exception):
    """The agent answered with an error."""


class QMP:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.f = self.sock.makefile("rb")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError("unexpected QMP greeting: %r" % greeting)
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise QMPError(r["error"].get("desc", str(r["error"])))
            return r.get("return")

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def next_event(self, timeout=None):
        if self.events:
            return self.events.pop(0)
        self.sock.settimeout(timeout)
        return self._read()

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class QGA:
    """Guest agent client: guest-sync-delimited first (flushes stale replies), then one command."""

    def __init__(self, path, timeout=3.0):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as e:
            raise AgentError(str(e))
        self.buf = b""

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AgentError("timeout")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AgentError("timeout")
        except OSError as e:
            raise AgentError(str(e))
        if not data:
            raise AgentError("agent socket closed")
        self.buf += data

    def _read_json(self, deadline):
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl].strip(), self.buf[nl + 1:]
                if not line:
                    continue
                try:
                    return json.loads(line)
                except ValueError:
                    continue
            self._recv(deadline)

    def sync(self):
        sid = random.randint(1, 2 ** 31 - 1)
        deadline = time.monotonic() + self.timeout
        request = {"execute": "guest-sync-delimited", "arguments": {"id": sid}}
        self.sock.sendall(b"\xff" + json.dumps(request).encode() + b"\n")
        while True:  # skip everything up to the 0xff delimiter, then to our id
            i = self.buf.find(b"\xff")
            if i >= 0:
                self.buf = self.buf[i + 1:]
                break
            self.buf = b""
            self._recv(deadline)
        while True:
            r = self._read_json(deadline)
            if r.get("return") == sid:
                return

    def cmd(self, name, args=None, timeout=None, reply=True):
        self.sync()
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        if not reply:
            return None
        deadline = time.monotonic() + (timeout or self.timeout)
        r = self._read_json(deadline)
        if "error" in r:
            raise AgentCommandError(r["error"].get("desc", str(r["error"])))
        return r.get("return")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def agent_call(path, name, args=None, timeout=3.0, reply=True):
    with QGA(path, timeout=timeout) as a:
        return a.cmd(name, args, timeout=timeout, reply=reply)
