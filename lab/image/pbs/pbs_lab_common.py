"""Shared code of the lab's PBS stand-ins (guest side). Not Proxmox code: a small imitation of the
interfaces in shared/reference/platform-facts.md, answering from state the lab's tests can set."""
import fcntl
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse

PKG_VERSION = "@PKG_VERSION@"          # replaced by lab/image/debs.sh, e.g. 3.2.4-1
TASKS_DIR = "/var/log/proxmox-backup/tasks"
ACTIVE = TASKS_DIR + "/active"
ACTIVE_LOCK = TASKS_DIR + "/active.lock"
DATASTORE_CFG = "/etc/proxmox-backup/datastore.cfg"
DATASTORE_LOCK = "/etc/proxmox-backup/.datastore.lck"
ACTIVE_OPS_DIR = "/run/proxmox-backup/active-operations"   # pbs_datastore::ACTIVE_OPERATIONS_DIR
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


# --- datastore config and maintenance mode ----------------------------------------------------------------
# Follows pbs-api-types (MaintenanceMode: default key "type", "message" <= 64 characters without control
# characters; DataStoreConfig::set_maintenance_mode) and proxmox-schema (property_string.rs: next_property,
# parse_quoted_string; ser/mod.rs: the default key is written without its name, a value is quoted only when it
# holds '"', '\\' or a newline).
MAINTENANCE_TYPES = ("read-only", "offline", "delete")


class PropertyError(ValueError):
    pass


def _parse_quoted(data):
    """data starts with '"': returns (value, rest)."""
    out, i, esc = [], 1, False
    while i < len(data):
        c = data[i]
        if esc:
            if c not in '"\\n':
                raise PropertyError("unsupported escape sequence")
            out.append("\n" if c == "n" else c)
            esc = False
        elif c == "\\":
            esc = True
        elif c == '"':
            return "".join(out), data[i + 1:]
        else:
            out.append(c)
        i += 1
    raise PropertyError("unexpected end of string")


def parse_property_string(data, default_key):
    """[(key, value)] of a property string, the keyless value under default_key."""
    props = []
    while data:
        key = None
        if not data.startswith('"'):
            pos = min([p for p in (data.find(","), data.find("=")) if p >= 0] or [-1])
            if pos >= 0 and data[pos] == "=":
                key, data = data[:pos], data[pos + 1:]
            if not data.startswith('"'):
                comma = data.find(",")
                value, data = (data, "") if comma < 0 else (data[:comma], data[comma + 1:])
                props.append((key or default_key, value))
                continue
        value, data = _parse_quoted(data)
        if data:
            if not data.startswith(","):
                raise PropertyError("garbage after quoted string")
            data = data[1:]
        props.append((key or default_key, value))
    return props


def parse_maintenance_mode(text):
    """{"type", "message"?} or raises PropertyError, like MaintenanceMode's schema deserializer."""
    mode = {}
    for key, value in parse_property_string(text, "type"):
        if key not in ("type", "message"):
            raise PropertyError("additional properties not allowed: %s" % key)
        if key in mode:
            raise PropertyError("duplicate field `%s`" % key)
        mode[key] = value
    if "type" not in mode:
        raise PropertyError("missing field `type`")
    if mode["type"] not in MAINTENANCE_TYPES:
        raise PropertyError("value '%s' is not defined in the enumeration." % mode["type"])
    msg = mode.get("message")
    if msg is not None and (len(msg) > 64 or any(ord(c) < 0x20 or ord(c) == 0x7f for c in msg)):
        raise PropertyError("message: value does not match the regex pattern" if len(msg) <= 64
                            else "message: value may only be 64 characters long")
    return mode


def print_maintenance_mode(mode):
    """PropertyString::to_property_string: 'read-only' or 'read-only,message=...' (quoted only if needed)."""
    out = mode["type"]
    msg = mode.get("message")
    if msg is not None:
        if any(c in msg for c in '"\\\n'):
            msg = '"' + msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        out += ",message=" + msg
    return out


def maintenance_of(store):
    """The mode PBS enforces for a datastore entry, or None (DataStoreConfig::get_maintenance_mode: a string
    that does not parse counts as no maintenance)."""
    raw = store.get("maintenance-mode")
    if not raw:
        return None
    try:
        return parse_maintenance_mode(raw)
    except PropertyError:
        return None


def check_maintenance(store_name, operation):
    """MaintenanceMode::check as DataStore::lookup_datastore reports it; operation 'read', 'write' or None.
    Returns the error text, or None when the operation may go ahead."""
    for store in read_datastores():
        if store["name"] != store_name:
            continue
        mode = maintenance_of(store)
        if mode is None or operation is None:
            return None
        msg = urllib.parse.unquote(mode.get("message", ""))
        if mode["type"] == "delete":
            return "datastore '%s' is in datastore is being deleted" % store_name
        if mode["type"] == "offline":
            return "datastore '%s' is in offline maintenance mode: %s" % (store_name, msg)
        if mode["type"] == "read-only" and operation == "write":
            return "datastore '%s' is in read-only maintenance mode: %s" % (store_name, msg)
        return None
    return "no such datastore '%s'" % store_name


class DatastoreLock:
    """pbs_config::datastore::lock_config (the config lock file)."""

    def __enter__(self):
        os.makedirs(os.path.dirname(DATASTORE_LOCK), exist_ok=True)
        self.fd = os.open(DATASTORE_LOCK, os.O_RDWR | os.O_CREAT, 0o640)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def write_datastore_property(name, key, value):
    """Set (value str) or delete (value None) one property of 'datastore: <name>' in datastore.cfg, keeping
    every other line as it is. Raises KeyError when the datastore does not exist."""
    with open(DATASTORE_CFG) as f:
        lines = f.read().splitlines()
    out, found, inside = [], False, False
    for line in lines:
        if line and not line[0].isspace():
            if inside and value is not None and not any(l.strip().split(" ", 1)[0] == key for l in section):
                out.append("\t%s %s" % (key, value))
            kind, sep, ident = line.partition(":")
            inside = kind.strip() == "datastore" and ident.strip() == name
            found = found or inside
            section = []
            out.append(line)
            continue
        if inside and line.strip():
            section.append(line)
            if line.strip().split(" ", 1)[0] == key:
                if value is not None:
                    out.append("\t%s %s" % (key, value))
                continue
        out.append(line)
    if inside and value is not None and not any(l.strip().split(" ", 1)[0] == key for l in section):
        out.append("\t%s %s" % (key, value))
    if not found:
        raise KeyError(name)
    tmp = DATASTORE_CFG + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.chmod(tmp, 0o640)
    try:
        import pwd
        os.chown(tmp, 0, pwd.getpwnam("backup").pw_gid)
    except (KeyError, OSError):
        pass
    os.replace(tmp, DATASTORE_CFG)


# --- active operations (pbs-datastore/src/task_tracking.rs) ----------------------------------------------
# Which operation a worker type takes on its datastore (DataStore::lookup_datastore callers: backup, prune, GC,
# sync target -> Write; reader, verify, tape backup -> Read).
WRITE_TYPES = {"backup", "prune", "prunejob", "garbage_collection", "sync", "syncjob"}
READ_TYPES = {"reader", "verify", "verify_group", "verify_snapshot", "verificationjob", "tape-backup",
              "tape-backup-job"}


def task_operation(worker_type):
    if worker_type in WRITE_TYPES:
        return "write"
    if worker_type in READ_TYPES:
        return "read"
    return None


def task_store(worker_type, worker_id):
    """The datastore a task works on, from its worker id (platform-facts: backup 'store:type/id', reader
    'store:...', syncjob 'remote:remote-store:store:ns:job', verificationjob 'store:job', GC 'store')."""
    if not worker_id:
        return None
    parts = worker_id.split(":")
    if worker_type in ("sync", "syncjob") and len(parts) >= 3:
        return parts[2]
    return parts[0]


def update_active_operations(store, operation, count, pid=None):
    """task_tracking::update_active_operations for process pid (default: this one)."""
    os.makedirs(ACTIVE_OPS_DIR, mode=0o750, exist_ok=True)
    pid = pid or os.getpid()
    starttime = proc_start_ticks(pid)
    path = os.path.join(ACTIVE_OPS_DIR, store)
    lockfd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o660)
    try:
        fcntl.flock(lockfd, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                entries = json.load(f)
        except FileNotFoundError:
            entries = []
        out, updated = [], False
        for e in entries:
            if proc_start_ticks(e["pid"]) != e["starttime"]:
                continue                         # a dead process, or an older process with a reused pid
            if e["pid"] == pid:
                e["active_operations"][operation] += count
                updated = True
            out.append(e)
        if not updated:
            out.append({"pid": pid, "starttime": starttime,
                        "active_operations": {"read": 1 if operation == "read" else 0,
                                              "write": 1 if operation == "write" else 0}})
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(dumps(out))
        os.chmod(tmp, 0o660)
        os.replace(tmp, path)
    finally:
        os.close(lockfd)


def get_active_operations(store):
    """task_tracking::get_active_operations: {"read", "write"} summed over live processes."""
    try:
        with open(os.path.join(ACTIVE_OPS_DIR, store)) as f:
            entries = json.load(f)
    except FileNotFoundError:
        return {"read": 0, "write": 0}
    total = {"read": 0, "write": 0}
    for e in entries:
        if proc_start_ticks(e["pid"]) == e["starttime"]:
            total["read"] += e["active_operations"]["read"]
            total["write"] += e["active_operations"]["write"]
    return total


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
