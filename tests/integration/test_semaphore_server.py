"""A real Semaphore UI server (v2.10.32, built by shared/tools/semaphore/build.sh) runs the restored project against
the lab, through its API, following semaphore/README.md step by step.

The server runs on loopback with BoltDB and its own tmp_path. The steps are the README's: restore the backup, paste
the SSH key, point the repository at a clone (here a local one, file://), point playbooks/collections/requirements.yml
at the built collection tarball, fill in the inventory's addresses, trust the host keys (ssh-keyscan, fingerprints
compared with the host's own), put the webhook URL and headers in the environment's secrets. What is lab-specific
is only where the hosts are: pbs on the lab's forwarded SSH port; pve, which is not an SSH host in the lab, is this
machine running lab/bin/qm and lab/bin/pvesh, whose lab instance the environment's variables name.

Then, through the API: a task without survey answers fails at the role's argument validation naming both required
variables; "Patch PBS (dry run)" passes the gates and changes nothing in the guest; "Patch PBS" patches the lab
(packages upgraded as the dry run said, boot id changed, the webhook received with its Authorization header intact).
No task output holds a secret. Skipped only when the Semaphore build script is not on this machine.
"""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from ansible_runner import REPO, VENV_BIN, snapshot_repo

sys.path.insert(0, str(REPO / "scripts"))
import toolchain  # noqa: E402  pylint: disable=wrong-import-position

BACKUP = REPO / "semaphore" / "pbs_patch.backup.json"
LAB = REPO / "lab"
RECEIVER = REPO / "tests" / "support" / "webhook_receiver.py"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DRY_RUN, REAL = "Patch PBS (dry run)", "Patch PBS"
# Survey answers as the UI sends them: strings. The lab's guest disk has about 3 GiB free.
ANSWERS = {"pbs_patch_vmid": "100", "pbs_patch_vm_name": "pbs", "pbs_patch_min_root_free_gb": "2"}
TASK_BOUND_S = 1800  # a bound, not an expectation: the real run on TCG under load takes minutes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Semaphore:
    """The server process and a small client of its API (api-docs.yml)."""

    def __init__(self, binary: Path, work: Path):
        self.binary, self.work = binary, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.tmp_path = work / "tmp"
        self.config = work / "config.json"
        self.password = secrets.token_urlsafe(16)
        self.token = None
        self.proc = None
        self.log = work / "server.log"

    def start(self):
        def key():
            return base64.b64encode(os.urandom(32)).decode()

        self.config.write_text(json.dumps({
            "dialect": "bolt", "bolt": {"host": str(self.work / "semaphore.bolt")},
            "interface": "127.0.0.1", "port": f":{self.port}", "tmp_path": str(self.tmp_path),
            "cookie_hash": key(), "cookie_encryption": key(), "access_key_encryption": key(),
        }))
        env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(self.work), "LANG": "C.UTF-8"}
        subprocess.run([str(self.binary), "user", "add", "--admin", "--login", "admin", "--name", "Admin",
                        "--email", "admin@localhost", "--password", self.password, "--config", str(self.config)],
                       env=env, capture_output=True, text=True, timeout=120, check=True)
        # The server finds ansible-playbook, ansible-galaxy and git on its PATH: the project venv first.
        with open(self.log, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen([str(self.binary), "server", "--config", str(self.config)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=5) as r:
                    if r.read().strip() == b"pong":
                        break
            except OSError:
                pass
            assert self.proc.poll() is None, "semaphore server exited:\n" + self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "semaphore server did not answer:\n" + self.log.read_text()[-3000:]
            time.sleep(0.5)
        login = urllib.request.Request(self.url + "/auth/login", method="POST",
                                       data=json.dumps({"auth": "admin", "password": self.password}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(login, timeout=30) as r:
            cookie = r.headers["Set-Cookie"].split(";", 1)[0]
        self.token = self.call("POST", "/user/tokens", headers={"Cookie": cookie})["id"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def call(self, method, path, body=None, headers=None):
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')}") from exc
        return json.loads(raw) if raw.strip() else None

    def by_name(self, project, kind):
        return {item["name"]: item for item in self.call("GET", f"/project/{project}/{kind}")}

    def run(self, project, template, answers):
        """Starts a task of `template` with survey answers (the UI sends them as the task's environment JSON),
        waits for its end (bounded) and returns (status, output without ANSI colours)."""
        task = self.call("POST", f"/project/{project}/tasks",
                         {"template_id": template["id"], "environment": json.dumps(answers)})
        deadline = time.monotonic() + TASK_BOUND_S
        while True:
            status = self.call("GET", f"/project/{project}/tasks/{task['id']}")["status"]
            if status in ("success", "error", "stopped"):
                break
            assert time.monotonic() < deadline, f"task {task['id']} still {status} after {TASK_BOUND_S} s"
            time.sleep(2)
        lines = self.call("GET", f"/project/{project}/tasks/{task['id']}/output") or []
        return status, "\n".join(ANSI.sub("", line["output"]) for line in lines)


@pytest.fixture(scope="module")
def semaphore(tmp_path_factory):
    try:
        binary = toolchain.semaphore()
    except toolchain.Missing as exc:
        pytest.skip(str(exc))
    server = Semaphore(binary, tmp_path_factory.mktemp("semaphore"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    """The notification endpoint (the webhook), recording each POST with its headers."""
    tmp = tmp_path_factory.mktemp("receiver")
    port_file, out = tmp / "port", tmp / "posts.jsonl"
    proc = subprocess.Popen([sys.executable, str(RECEIVER), "--out", str(out), "--port-file", str(port_file)],
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline, "the webhook receiver did not start"
        time.sleep(0.1)
    yield {"url": f"http://127.0.0.1:{port_file.read_text().strip()}/hook/pbs", "posts": out}
    proc.terminate()
    proc.wait(timeout=30)


def posts(receiver):
    path = receiver["posts"]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def lab_inventory(backup_inventory: str, known_hosts: Path) -> str:
    """README step "Inventory": the backup's inventory with the addresses of the lab, and the known_hosts file."""
    inv = yaml.safe_load(backup_inventory)
    children = inv["all"]["children"]
    pbs = children["pbs_hosts"]["hosts"]["pbs"]
    pbs.update(ansible_host="127.0.0.1", ansible_port=int(os.environ["PBS_PATCH_LAB_SSH_PORT"]))
    # The lab's "PVE node" is this machine running the qm and pvesh stand-ins (lab/README.md).
    children["pve_hosts"]["hosts"]["pve"] = {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "pbs_patch_qm_command": str(LAB / "bin" / "qm"), "pbs_patch_pvesh_command": str(LAB / "bin" / "pvesh"),
        "pbs_patch_lease_path": str(Path(os.environ["PBS_PATCH_LAB_STATE"]) / "maintenance.lease")}
    lab_vars = yaml.safe_load((LAB / "inventory.yml").read_text())["all"]["vars"]
    for name, value in lab_vars.items():  # the lab's own settings (for example the jobs it ignores)
        if name not in ANSWERS:
            inv["all"]["vars"].setdefault(name, value)
    common = inv["all"]["vars"]["ansible_ssh_common_args"]
    inv["all"]["vars"]["ansible_ssh_common_args"] = re.sub(r"UserKnownHostsFile=\S+", f"UserKnownHostsFile={known_hosts}",
                                                           common)
    return yaml.safe_dump(inv, sort_keys=False)


def trust_host_key(lab, known_hosts: Path):
    """README step "Host keys": scan the key, compare its fingerprint with the one the host itself shows, add it."""
    port = os.environ["PBS_PATCH_LAB_SSH_PORT"]
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", port, "127.0.0.1"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert scan.strip(), "ssh-keyscan found no key"
    scanned = subprocess.run(["ssh-keygen", "-lf", "-"], input=scan, capture_output=True, text=True, timeout=60,
                             check=True).stdout.split()[1]
    on_host = lab.ssh("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    assert scanned == on_host, "the scanned host key is not the host's own"
    known_hosts.write_text(scan)


def dpkg_versions(lab):
    out = lab.ssh("dpkg-query -W -f '${Package} ${Version}\\n'").stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


@pytest.fixture(scope="module")
def project(semaphore, receiver, lab, tmp_path_factory):
    """The backup restored and filled in as semaphore/README.md says."""
    work = tmp_path_factory.mktemp("project")
    backup = json.loads(BACKUP.read_text())
    project_id = semaphore.call("POST", "/projects/restore", backup)["id"]
    # A second project of the same name restores too (README: rename it when you import it twice).
    assert semaphore.call("POST", "/projects/restore", backup)["id"] != project_id

    # 1. The SSH key that logs in as root on pbs and pve.
    keys = semaphore.by_name(project_id, "keys")
    ssh_key = keys["PBS SSH key"]
    private_key = (Path(os.environ.get("PBS_PATCH_LAB_CACHE") or "/var/cache/pbs-patch-lab") / "ssh"
                   / "id_ed25519").read_text()
    semaphore.call("PUT", f"/project/{project_id}/keys/{ssh_key['id']}", dict(
        ssh_key, override_secret=True, ssh={"login": "", "passphrase": "", "private_key": private_key}))

    # 2./3. The repository: a clone of this one whose playbooks/collections/requirements.yml names the built
    # collection (a tarball path on the Semaphore host, `type: file`), committed.
    built = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                            str(work), str(REPO)], capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (tarball,) = work.glob("cfolino-pbs-*.tar.gz")
    clone = snapshot_repo(work / "pbs_patch")
    requirements = clone / "playbooks" / "collections" / "requirements.yml"
    text = requirements.read_text()
    text = re.sub(r"  - name: \S+\n    type: url\n", f"  - name: {tarball}\n    type: file\n", text)
    assert str(tarball) in text, "README step 3: the requirement names the tarball"
    requirements.write_text(text)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-am",
                    "Install the built collection"], cwd=clone, check=True, timeout=60)
    repo = semaphore.by_name(project_id, "repositories")["pbs_patch"]
    semaphore.call("PUT", f"/project/{project_id}/repositories/{repo['id']}",
                   dict(repo, git_url=f"file://{clone}", git_branch="main"))

    # 4./5. The inventory's addresses, and the host keys in the file it names.
    known_hosts = work / "pbs_patch_known_hosts"
    trust_host_key(lab, known_hosts)
    inventory = semaphore.by_name(project_id, "inventory")["PBS and PVE"]
    semaphore.call("PUT", f"/project/{project_id}/inventory/{inventory['id']}",
                   dict(inventory, inventory=lab_inventory(inventory["inventory"], known_hosts)))

    # 6. The environment: the report path (not secret), the lab instance the stand-ins drive (what the PVE node is
    # here), and the webhook URL and headers as secrets. A value with a space goes in single quotes (README).
    environment = semaphore.by_name(project_id, "environment")["PBS patching"]
    extra = json.loads(environment["json"])
    extra["pbs_patch_report_path"] = str(work / "report.json")
    token = "s3cret-" + secrets.token_hex(8)
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    lab_env = {k: os.environ[k] for k in ("PBS_PATCH_LAB_STATE", "PBS_PATCH_LAB_CACHE", "PBS_PATCH_LAB_SSH_PORT")
               if k in os.environ}
    semaphore.call("PUT", f"/project/{project_id}/environment/{environment['id']}", dict(
        environment, json=json.dumps(extra), env=json.dumps(lab_env), secrets=[
            {"type": "var", "name": "pbs_patch_notify_webhook_url", "secret": receiver["url"], "operation": "create"},
            {"type": "var", "name": "pbs_patch_notify_webhook_headers", "secret": f"'{headers}'",
             "operation": "create"}]))
    templates = semaphore.by_name(project_id, "templates")
    return {"id": project_id, "templates": templates, "report": work / "report.json",
            "secrets": [token, receiver["url"], private_key.strip().splitlines()[1]]}


def assert_clean(output, project):
    for secret in project["secrets"]:
        assert secret not in output, "a secret is in the task output"
    assert "Found both group and host with same name" not in output


@pytest.mark.lab
@pytest.mark.ci
def test_semaphore_runs_the_restored_templates_against_the_lab(semaphore, project, receiver, lab):
    times = {}
    lab.reset()
    boot_id, versions = lab.boot_id(), dpkg_versions(lab)

    # A task without survey answers (Semaphore does not enforce "required"): the role names what is missing.
    started = time.monotonic()
    status, out = semaphore.run(project["id"], project["templates"][DRY_RUN], {})
    times["no answers"] = time.monotonic() - started
    assert status == "error", out[-4000:]
    assert "missing required arguments" in out and "pbs_patch_vmid" in out and "pbs_patch_vm_name" in out, out[-4000:]
    assert "Preflight |" not in out, out[-4000:]
    assert_clean(out, project)

    # The dry run: the gates pass, nothing changes in the guest, nothing is announced.
    started = time.monotonic()
    status, out = semaphore.run(project["id"], project["templates"][DRY_RUN], ANSWERS)
    times["dry run"] = time.monotonic() - started
    assert status == "success", out[-6000:]
    assert "Run the PBS hard gates" in out, out[-6000:]
    assert "cfolino-pbs" in out or "cfolino.pbs" in out
    report = json.loads(project["report"].read_text())
    assert report["status"] == "check_mode", report
    would = {p["name"]: p["to"] for p in report["packages_would_change"]}
    assert would, "the lab has pending upgrades after a reset"
    assert lab.boot_id() == boot_id and dpkg_versions(lab) == versions, "the dry run changed the guest"
    assert posts(receiver) == [], "the dry run sent a notification"
    assert_clean(out, project)

    # The real run: patched as the dry run said, rebooted, verified, announced with the header intact.
    started = time.monotonic()
    status, out = semaphore.run(project["id"], project["templates"][REAL], ANSWERS)
    times["real run"] = time.monotonic() - started
    assert status == "success", out[-8000:]
    report = json.loads(project["report"].read_text())
    assert report["status"] == "patched", report
    after = dpkg_versions(lab)
    for name, version in would.items():
        assert after.get(name) == version, (name, versions.get(name), after.get(name))
    assert lab.boot_id() != boot_id
    received = posts(receiver)
    assert received, "no notification reached the webhook"
    assert received[-1]["headers"].get("Authorization") == f"Bearer {project['secrets'][0]}", \
        "the secret header was cut or lost on its way through Semaphore"
    assert_clean(out, project)
    print("semaphore task times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
