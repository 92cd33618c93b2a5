"""Shared code of the lab's PBS stand-ins (guest side). Not Proxmox code: a small imitation of the
interfaces in shared/reference/platform-facts.md, answering from state the lab's tests can set."""
import fcntl
import json
import os
import re
import socket
import subprocess
import time

PKG_VERSION = "@PKG_VERSION@"          # replaced by lab/image/debs.sh, e.g. 3.2.4-1
TASKS_DIR = "/var/log/proxmox-backup/tasks"
ACTIVE = TASKS_DIR + "/active"
ACTIVE_LOCK = TASKS_DIR + "/active.lock"
DATASTORE_CFG = "/etc/proxmox-backup/datastore.cfg"
API_ADDR = ("127.0.0.1", 82)
PROXY_PORT = 8007

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
    r"(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<task_id>[0-9A-Fa-f]{8,16}):(?P<starttime>[0-9A-Fa-f]{8}):"
    r"(?P<wtype>[^:\s]+):(?P<wid>[^:\s]*):(?P<authid>[^:\s]+):$")


def running_version():
    """Upstream version the running daemon was built from, e.g. '3.2.4' for package 3.2.4-1."""
    return PKG_VERSION.split("-", maxsplit=1)[0]


def systemd_escape(s):
    """proxmox_sys::systemd::escape_unit(s, false): '/' -> '-', [A-Za-z0-9_.] kept, all else \\xNN."""
    out = []
    for i, ch in enumerate(s.encode()):
        c = chr(ch)
        if c == "/":
            out.append("-")
        elif (c.isascii() and (c.isalnum() or c == "_" or (c == "." and i > 0))):
            out.append(c)
        else:
            out.append("\\x%02x" % ch)
    return "".join(out)


def systemd_unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "-":
            out += b"/"
            i += 1
        elif s.startswith("\\x", i) and i + 4 <= len(s):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode()
            i += 1
    return out.decode(errors="replace")


def proc_start_ticks(pid):
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), as PBS uses for pstart."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[19])


def parse_upid(upid):
    m = UPID_RE.match(upid)
    if not m:
        raise ValueError("unable to parse UPID '%s'" % upid)
    wid = m.group("wid")
    return {
        "upid": upid,
        "node": m.group("node"),
        "pid": int(m.group("pid"), 16),
        "pstart": int(m.group("pstart"), 16),
        "task_id": int(m.group("task_id"), 16),
        "starttime": int(m.group("starttime"), 16),
        "worker_type": m.group("wtype"),
        "worker_id": systemd_unescape(wid) if wid else None,
        "user": m.group("authid"),
    }


def make_upid(node, pid, pstart, task_id, starttime, worker_type, worker_id, authid):
    wid = systemd_escape(worker_id) if worker_id else ""
    return "UPID:%s:%08X:%08X:%08X:%08X:%s:%s:%s:" % (
        node, pid, pstart, task_id, starttime, worker_type, wid, authid)


class ActiveLock:
    """The lock PBS takes around the 'active' file (flock on active.lock)."""

    def __enter__(self):
        os.makedirs(TASKS_DIR, exist_ok=True)
        self.fd = os.open(ACTIVE_LOCK, os.O_RDWR | os.O_CREAT, 0o660)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def read_active():
    """Lines of the active file as (upid, endtime|None, status|None)."""
    entries = []
    try:
        with open(ACTIVE) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return entries
    for line in lines:
        line = line.strip()
        if not line:
            continue
        parts = line.split(" ", 2)
        if len(parts) == 1:
            entries.append((parts[0], None, None))
        else:
            entries.append((parts[0], int(parts[1], 16), parts[2] if len(parts) > 2 else "unknown"))
    return entries


def write_active(entries):
    tmp = ACTIVE + ".tmp"
    with open(tmp, "w") as f:
        for upid, endtime, status in entries:
            if endtime is None:
                f.write(upid + "\n")
            else:
                f.write("%s %08X %s\n" % (upid, endtime, status))
    try:
        import pwd
        pw = pwd.getpwnam("backup")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    except (KeyError, OSError):
        pass
    os.chmod(tmp, 0o644)
    os.replace(tmp, ACTIVE)


def worker_alive(info):
    return proc_start_ticks(info["pid"]) == info["pstart"]


def update_active():
    """Like PBS's update_active_workers: a 'running' task whose process is gone ended in state
    'unknown'. Returns the entries after the update."""
    with ActiveLock():
        entries = read_active()
        changed = False
        out = []
        for upid, endtime, status in entries:
            if endtime is None:
                try:
                    info = parse_upid(upid)
                except ValueError:
                    changed = True
                    continue
                if not worker_alive(info):
                    endtime, status, changed = info["starttime"], "unknown", True
            out.append((upid, endtime, status))
        if changed:
            write_active(out)
        return out


def status_text(file_status):
    """Text of the 'status' API field from the state text in the file (TaskState Display)."""
    if file_status.startswith("ERROR: "):
        return file_status[len("ERROR: "):]
    return file_status


def task_list(running_only, limit, start=0):
    items = []
    for upid, endtime, status in update_active():
        try:
            info = parse_upid(upid)
        except ValueError:
            continue
        if running_only and endtime is not None:
            continue
        item = {k: info[k] for k in ("upid", "node", "pid", "pstart", "starttime", "worker_type",
                                     "worker_id", "user")}
        if endtime is not None:
            item["endtime"] = endtime
            item["status"] = status_text(status)
        items.append(item)
    # running tasks first, then newest first (PBS lists the active file newest first)
    items.sort(key=lambda t: (0 if "endtime" not in t else 1, -t["starttime"], -t["pid"]))
    return items[start:start + limit]


def read_datastores():
    stores = []
    cur = None
    try:
        with open(DATASTORE_CFG) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return stores
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            kind, _sep, name = line.partition(":")
            if kind.strip() == "datastore":
                cur = {"name": name.strip()}
                stores.append(cur)
            else:
                cur = None
        elif cur is not None:
            key, _sep, val = line.strip().partition(" ")
            cur[key] = val.strip()
    return sorted(stores, key=lambda s: s["name"])


def dpkg_versions(pkgs):
    """{pkg: (installed_version|None, candidate|None)} from dpkg-query and apt-cache policy."""
    res = {p: [None, None] for p in pkgs}
    q = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n"] + list(pkgs),
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    for line in q.stdout.splitlines():
        name, ver, st = (line.split("\t") + ["", ""])[:3]
        if name in res and st.startswith("ii"):
            res[name][0] = ver
    pol = subprocess.run(["apt-cache", "policy"] + list(pkgs), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, check=False)
    cur = None
    for line in pol.stdout.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            cur = line[:-1]
        elif cur in res and line.strip().startswith("Candidate:"):
            cand = line.split(":", 1)[1].strip()
            res[cur][1] = None if cand == "(none)" else cand
    return res


def sd_notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(addr)
        s.sendall(msg.encode())
    finally:
        s.close()


def now():
    return int(time.time())


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))
