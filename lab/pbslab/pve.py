"""The lab's Proxmox VE side: one VM (vmid 100) whose configuration lives in a lab "cluster filesystem"
directory ($PBS_PATCH_LAB_STATE/pmxcfs, laid out like /etc/pve: nodes/<node>/qemu-server/<vmid>.conf,
priv/lock/, ha/), seen by one node (single-node mode, the default) or by three node identities pve1, pve2,
pve3 (cluster mode). lab/bin/qm and lab/bin/pvesh take their node identity from PBS_PATCH_LAB_NODE (the
per-node wrappers in lab/bin/nodes/<node>/ set it) and log every call with it.

Where the VM "is" is where its config file is, as in pmxcfs's vmlist (pve-cluster src/pmxcfs/memdb.c
memdb_recreate_vmlist); a migration renames the file to the target node's directory while the same QEMU keeps
running (a live migration, seen from outside). Facts: shared/reference/cluster-quiesce-facts.md."""
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from . import common as C

CFS = C.STATE / "pmxcfs"                       # the lab's /etc/pve
VM_TEMPLATE = C.STATE / "vm-100.conf"          # the VM's pristine config (smbios1 uuid fixed per disk)
CLUSTER_FILE = CFS / "lab-cluster.json"        # present = cluster mode (as corosync.conf makes a cluster)
HA_STATUS = CFS / "ha" / "manager_status.json"  # {"service_status": {"vm:100": {"state": "started"}}}
USER_CFG = CFS / "lab-pools.json"              # {"infra": [100]}: resource pools (user.cfg on PVE)
LOCK_DIR = CFS / "priv" / "lock"
CLUSTER_LEASE = CFS / "priv" / "pbs-patch" / "maintenance.lease"
LOG_DIR = C.STATE / "pve"
QM_LOG = LOG_DIR / "qm-calls.jsonl"
PVESH_LOG = LOG_DIR / "pvesh-calls.jsonl"
EVENTS = LOG_DIR / "events.jsonl"
TRIGGER = LOG_DIR / "trigger-migrate.json"
CLUSTER_NAME = "labcluster"
CLUSTER_NODES = ["pve1", "pve2", "pve3"]


class Locked:
    """One writer of the lab's PVE state at a time (qm, pvesh and labctl run concurrently in tests)."""

    def __enter__(self):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(LOG_DIR / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def local_node():
    return C.node_name()


def single_node_name():
    """The node of single-node mode: recorded when the cluster filesystem was (re)made."""
    try:
        return (CFS / "lab-single-node").read_text().strip()
    except OSError:
        return C.node_name()


def clustered():
    return CLUSTER_FILE.exists()


def cluster_nodes():
    data = C.read_json(CLUSTER_FILE, {})
    return data.get("nodes") or [single_node_name()]


def member(node):
    """Whether `node` sees the cluster (a node outside it answers as a standalone node)."""
    return clustered() and node in cluster_nodes()


def quorate():
    return not C.fault_on("no-quorum")


def conf_path(node, vmid=C.VMID):
    return CFS / "nodes" / node / "qemu-server" / ("%s.conf" % vmid)


def vm_node(vmid=C.VMID):
    """The node whose directory holds the VM's config, or None."""
    base = CFS / "nodes"
    if not base.exists():
        return None
    for d in sorted(base.iterdir()):
        if (d / "qemu-server" / ("%s.conf" % vmid)).exists():
            return d.name
    return None


def vm_conf_path(vmid=C.VMID):
    node = vm_node(vmid)
    return conf_path(node, vmid) if node else None


def parse_conf(text):
    conf = {}
    for line in text.splitlines():
        if line.startswith("["):
            break  # snapshot sections
        if ":" in line and not line.startswith("#"):
            k, sep, v = line.partition(":")
            conf[k.strip()] = v.strip()
    return conf


def read_conf(path):
    return parse_conf(Path(path).read_text())


def write_conf(path, conf):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join("%s: %s\n" % (k, v) for k, v in sorted(conf.items())))
    os.replace(tmp, path)


def set_conf_key(key, value, vmid=C.VMID):
    """Set (or with None remove) one key of the VM's live config, wherever it is."""
    with Locked():
        path = vm_conf_path(vmid)
        if path is None:
            raise C.LabError("VM %s has no configuration in %s" % (vmid, CFS))
        conf = read_conf(path)
        if value is None:
            conf.pop(key, None)
        else:
            conf[key] = value
        write_conf(path, conf)


def event(kind, **data):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(EVENTS, "a") as f:
        f.write(json.dumps(dict({"t": time.time(), "event": kind}, **data)) + "\n")


def log_call(path, node, argv, rc, **extra):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    line = json.dumps(dict({"t": time.time(), "node": node, "argv": argv, "rc": rc}, **extra))
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line + "\n")


def read_log(path):
    try:
        return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    except OSError:
        return []


def make_single_node():
    """The pristine PVE side: one node (this host's name, or PBS_PATCH_LAB_NODE), the VM on it, no HA, no
    pools, no locks, no lease, logs cleared."""
    with Locked():
        shutil.rmtree(CFS, ignore_errors=True)
        for p in (QM_LOG, PVESH_LOG, EVENTS, TRIGGER):
            p.unlink(missing_ok=True)
        node = C.node_name()
        (CFS / "nodes" / node / "qemu-server").mkdir(parents=True)
        LOCK_DIR.mkdir(parents=True)
        (CFS / "lab-single-node").write_text(node + "\n")
        if VM_TEMPLATE.exists():
            shutil.copyfile(VM_TEMPLATE, conf_path(node))


def make_cluster(vm_on="pve1"):
    """Cluster mode: nodes pve1..pve3 (all online, quorate), the VM on `vm_on`, in pool 'infra'."""
    if vm_on not in CLUSTER_NODES:
        raise C.LabError("unknown node '%s' (cluster nodes: %s)" % (vm_on, ", ".join(CLUSTER_NODES)))
    with Locked():
        src = vm_conf_path()
        conf = read_conf(src) if src else (read_conf(VM_TEMPLATE) if VM_TEMPLATE.exists() else None)
        if conf is None:
            raise C.LabError("no VM configuration yet: run 'lab/labctl start' first")
        for d in (CFS / "nodes").glob("*"):
            shutil.rmtree(d, ignore_errors=True)
        for n in CLUSTER_NODES:
            (CFS / "nodes" / n / "qemu-server").mkdir(parents=True, exist_ok=True)
        write_conf(conf_path(vm_on), conf)
        C.write_json(CLUSTER_FILE, {"name": CLUSTER_NAME, "nodes": CLUSTER_NODES, "config_version": 3})
        C.write_json(USER_CFG, {"infra": [C.VMID]})
        event("cluster", nodes=CLUSTER_NODES, vm_node=vm_on)


def migrate(target, lock=None):
    """A finished live migration: the config moves to `target`, the same QEMU keeps running. With lock, the
    config keeps `lock: <lock>` (a migration still in progress looks like that from outside)."""
    with Locked():
        src_node = vm_node()
        if src_node is None:
            raise C.LabError("the VM has no configuration in %s" % CFS)
        if not member(target):
            raise C.LabError("'%s' is not a node of the lab cluster (labctl cluster on; nodes %s)"
                             % (target, ", ".join(cluster_nodes())))
        conf = read_conf(conf_path(src_node))
        if lock:
            conf["lock"] = lock
        else:
            conf.pop("lock", None)
        if target != src_node:
            write_conf(conf_path(target), conf)
            conf_path(src_node).unlink()
        else:
            write_conf(conf_path(target), conf)
        event("migrate", source=src_node, target=target, lock=lock)


def arm_migration(target, lock=None):
    """A migration that happens when pvesh next reads /cluster/resources after a qm command has run: in a
    patch run that is the check right before 'qm reboot' (the preflight reads the cluster before its qm
    calls). Deterministic: keyed to calls, not to time."""
    if not member(target):
        raise C.LabError("'%s' is not a node of the lab cluster" % target)
    C.write_json(TRIGGER, {"target": target, "lock": lock, "qm_calls_at_arming": len(read_log(QM_LOG))})


def fire_trigger():
    """Called by pvesh before it answers a /cluster/resources read."""
    trig = C.read_json(TRIGGER)
    if not trig:
        return
    if len(read_log(QM_LOG)) <= trig["qm_calls_at_arming"]:
        return
    TRIGGER.unlink(missing_ok=True)
    migrate(trig["target"], trig.get("lock"))


def ha_state(vmid=C.VMID):
    data = C.read_json(HA_STATUS, {})
    entry = data.get("service_status", {}).get("vm:%s" % vmid)
    return entry.get("state") if entry else None


def set_ha_state(state, vmid=C.VMID):
    HA_STATUS.parent.mkdir(parents=True, exist_ok=True)
    data = C.read_json(HA_STATUS, {}) or {}
    services = data.setdefault("service_status", {})
    if state is None:
        services.pop("vm:%s" % vmid, None)
    else:
        services["vm:%s" % vmid] = {"state": state, "node": vm_node(vmid)}
    C.write_json(HA_STATUS, data)


def pool_of(vmid):
    for pool, members in (C.read_json(USER_CFG, {}) or {}).items():
        if vmid in members:
            return pool
    return None
