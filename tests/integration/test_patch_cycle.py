"""The whole patch cycle: the real playbooks/patch_pbs.yml against the lab VM (issues 5 and 13).

Scenarios, each from the lab's pristine snapshot (`labctl reset`):
  * a real run: packages at their new versions, the locally modified conffile kept, boot id changed, PBS services
    active and enabled, the notification received (generic webhook, ntfy and Gotify formats) with every field, and
    exactly one HTML e-mail from a real SMTP server on loopback (STARTTLS, AUTH): its headers, every section and
    every field equal to what the run did; no secret in the message, the report or Ansible's output;
    then a second run: nothing to upgrade, it still reboots and verifies, and a wrong SMTP password and a webhook
    answering 500 are warnings, not failures;
  * --check: dpkg state and boot id unchanged, the would-be upgrades listed, nothing sent (no mail either), the
    would-be mail in the report;
  * a wrong VM name (wrong VMID) is refused before anything changes;
  * the VM not coming back: the opt-in failure alert, one mail saying FAILED and the step.
Fast checks without the VM: a wrongly typed variable fails before any task, and the installed collection works.
The VM is the session lab of tests/conftest.py (one VM at a time on this machine). The real run and the --check run
go on every lab guest (Debian 13 with PBS 4, Debian 12 with PBS 3), with the same module binaries; the expected
versions are the guest's own (labctl guest), never hardcoded.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from labhelpers import C  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
sys.path.insert(0, str(REPO / "tests" / "support"))
from notify_receivers import read_mail  # noqa: E402

RECEIVER = REPO / "tests" / "support" / "webhook_receiver.py"
PLAYBOOK = REPO / "playbooks" / "patch_pbs.yml"
INVENTORY = REPO / "lab" / "inventory.yml"


EVERY_GUEST = pytest.mark.guests(*C.guests())
REPORT_FIELDS = {"status", "host", "kernel", "root_free_gb", "reboot_required", "services", "recent_tasks",
                 "health_summary", "packages_changed", "timings", "boot_id_before", "boot_id_after", "guest_agent"}
TIMING_FIELDS = {"gate_s", "upgrade_s", "downtime_s", "shutdown_s", "boot_to_ssh_s", "login_s", "verify_s", "total_s"}
SECRET = "s3cr3t-token-for-tests"


def _env():
    return dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="false")


def playbook(*args, timeout=1200, inventory=INVENTORY, cwd=REPO, target=PLAYBOOK):
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(target), *map(str, args)]
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    return p.returncode, p.stdout + p.stderr


class Receiver:
    """The local HTTP endpoint that records every notification POST."""

    def __init__(self, tmp: Path):
        self.out = tmp / "posts.jsonl"
        port_file = tmp / "receiver.port"
        self.proc = subprocess.Popen([sys.executable, str(RECEIVER), "--out", str(self.out), "--port-file",
                                      str(port_file)], stderr=subprocess.DEVNULL)
        for _attempt in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        self.url = "http://127.0.0.1:%s" % port_file.read_text().strip()

    def posts(self):
        return [json.loads(x) for x in self.out.read_text().splitlines() if x.strip()] if self.out.exists() else []

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(tmp_path)
    yield r
    r.stop()


MAIL_FROM, MAIL_TO, MAIL_CC, MAIL_BCC = ("PBS patching <pbs-patch@example.org>", "backup-admins@example.org",
                                         "it-lead@example.org", "change-log@example.org")


def email_vars(smtp, password=None):
    return {"pbs_patch_notify_email_host": "127.0.0.1", "pbs_patch_notify_email_port": smtp.port,
            "pbs_patch_notify_email_username": smtp.user,
            "pbs_patch_notify_email_password": smtp.password if password is None else password,
            "pbs_patch_notify_email_from": MAIL_FROM, "pbs_patch_notify_email_to": [MAIL_TO],
            "pbs_patch_notify_email_cc": [MAIL_CC], "pbs_patch_notify_email_bcc": [MAIL_BCC]}


def notify_args(receiver, report, smtp=None):
    extra = {"pbs_patch_notify_webhook_url": receiver.url + "/webhook",
             "pbs_patch_notify_webhook_headers": {"Authorization": "Bearer " + SECRET},
             "pbs_patch_notify_ntfy_url": receiver.url + "/ntfy",
             "pbs_patch_notify_ntfy_topic": "pbs-lab",
             "pbs_patch_notify_ntfy_token": SECRET,
             "pbs_patch_notify_gotify_url": receiver.url + "/gotify",
             "pbs_patch_notify_gotify_token": SECRET}
    if smtp is not None:
        extra.update(email_vars(smtp))
    return ["-e", f"pbs_patch_report_path={report}", "-e", json.dumps(extra)]


def duration(seconds: float) -> str:
    """The mail's duration format (roles/pbs_patch/tasks/notify.yml): "1 min 05 s", or "42.3 s" under a minute."""
    if seconds >= 60:
        whole = int(math.floor(seconds + 0.5))
        return "%d min %02d s" % (whole // 60, whole % 60)
    return "%.1f s" % seconds


def utc(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def assert_change_record(mail: dict, r: dict, smtp, *, boot0, boot1, before, after, units, kernel):
    """The mail of a verified run against the report and what the lab shows (headers, every section, every field)."""
    warnings = r["warnings"]
    outcome = "patched, rebooted and verified" + (
        (", %d warning%s" % (len(warnings), "" if len(warnings) == 1 else "s")) if warnings else "")
    # envelope and headers
    assert mail["tls"] is True and mail["auth_user"] == smtp.user
    assert mail["mail_from"] == "pbs-patch@example.org"
    assert sorted(mail["rcpt_tos"]) == sorted([MAIL_TO, MAIL_CC, MAIL_BCC])
    msg = mail["msg"]
    assert msg["Subject"] == f"[pbs_patch] pbs: {outcome}"
    assert (msg["From"], msg["To"], msg["Cc"], msg["Bcc"]) == (MAIL_FROM, MAIL_TO, MAIL_CC, None)
    assert msg["X-PBS-Patch-Run-Id"] == r["run_id"] and msg["X-PBS-Patch-Status"] == "patched"
    assert msg["Message-ID"].endswith("@example.org>") and msg["Date"]
    assert msg.get_body(("html",)).get_content_type() == "text/html"
    view = read_mail(mail["html"])
    assert view.scripts == 0 and view.external == []
    assert view.headline == f"PBS pbs {outcome}"
    assert r["run_id"] in view.footer
    assert list(view.sections) == ["What ran where and when", "Packages changed", "Reboot", "Health",
                                   "Set and restored on the way", "Warnings"], list(view.sections)

    # the other steps' report keys (pve_node, ha_state_*, quiesce) are rendered when present, "none" when absent
    ha = (f"{r.get('ha_state_before') or '?'} -> {r.get('ha_state_after') or '?'}"
          if (r.get("ha_state_before") or r.get("ha_state_after")) else "none")
    ident = {"Host": "pbs", "VM": "100 (pbs)", "Proxmox VE node": r["pve_node"], "HA state": ha,
             "Run id": r["run_id"], "Started (UTC)": r["started_at"], "Finished (UTC)": r["finished_at"],
             "Duration": duration(r["timings"]["total_s"])}
    assert view.sections["What ran where and when"].rows == ident
    assert list(view.sections["What ran where and when"].rows) == list(ident), "rows out of order"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", r["run_id"]), r["run_id"]

    pkgs = view.sections["Packages changed"].table()
    assert pkgs.columns == ["Package", "Before", "After"]
    assert sorted(pkgs.rows) == sorted([[n, before[n], after[n]] for n in after])
    assert sorted(pkgs.rows) == sorted([[p["name"], p["from"] or "(new)", p["to"] or "(removed)"]
                                        for p in r["packages_changed"]])

    ga = r["guest_agent"]
    reboot = view.sections["Reboot"].rows
    assert reboot == {
        "qm reboot issued (UTC)": r["reboot_issued_at"], "SSH down (UTC)": r["ssh_down_at"],
        "SSH up (UTC)": r["ssh_up_at"], "Downtime (qm reboot to login)": duration(r["timings"]["downtime_s"]),
        "Boot id before": boot0, "Boot id after": boot1, "Kernel before": r["kernel_before"], "Kernel after": kernel,
        "Reboot-required flag": "after the upgrade: yes; after the reboot: no",
        "Guest agent": "uptime %.1f s; %s; kernel %s" % (
            ga["uptime_s"], ga["os_info"]["pretty-name"], ga["os_info"]["kernel-release"])}, reboot
    assert r["started_at"] <= r["reboot_issued_at"] <= r["ssh_down_at"] <= r["ssh_up_at"] <= r["finished_at"]
    assert ga["os_info"]["kernel-release"] == kernel

    health = view.sections["Health"]
    assert health.rows == {"Healthy": "yes",
                           "PBS version": "%s installed, %s running" % (after["proxmox-backup-server"],
                                                                        r["pbs_version"]["running"]),
                           "Root free space": "%s GiB" % r["root_free_gb"],
                           "Proxy API port": "port 8007 answers (%s)" % r["proxy"]["answer"]}
    assert health.table("Services").columns == ["Unit", "Active", "State", "Enabled"]
    assert health.table("Services").rows == [[u, "active", "running", "enabled"] for u in units]
    assert health.table("Datastores").rows == [
        [d["name"], d["path"], "yes", (d["maintenance_mode"] or {}).get("type") or "none"] for d in r["datastores"]]
    tasks = health.table("Last")
    assert tasks.caption == "Last PBS tasks (newest first, at most 10)"
    if r["recent_tasks"]:
        assert tasks.columns == ["Started (UTC)", "Type", "ID", "User", "Status"]
        assert tasks.rows == [[utc(t["starttime"]), t["worker_type"], t.get("worker_id") or "none", t["user"],
                               t.get("status") or "running"] for t in r["recent_tasks"]]
    else:
        assert tasks.empty == "none listed"

    lease = r["lease"]
    setr = view.sections["Set and restored on the way"]
    assert setr.rows.get("Maintenance lease") == lease["where"] and lease["where"].startswith("node-local pve:")
    assert setr.rows.get("Lease holder") == lease["holder"]
    assert setr.rows.get("Lease at the end") == lease["state_at_end"] == "released"
    if r.get("quiesce"):
        assert setr.rows.get("Quiesce") == r["quiesce"]["mode"]
        q = setr.table("Datastore maintenance modes")
        assert [row[0] for row in q.rows] == [d["name"] for d in r["quiesce"]["datastores"]]
    else:
        assert "quiesce" in r and setr.rows.get("Quiesce") == "none" and setr.tables == []
    warn = view.sections["Warnings"]
    assert warn.items == warnings if warnings else warn.empty == "none"


def dpkg_state(lab):
    return lab.ssh("dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sort").stdout


def new_versions(lab):
    """{package: version} the pending upgrades of the lab's guest end at (pbs-lab-conffile, pbs-lab-kernel, the
    PBS stand-in: 3.2.5-1 on Debian 12, 4.1.0-1 on Debian 13)."""
    return {name: v["to"] for name, v in lab.info["pending_upgrades"].items()}


def versions(lab):
    out = lab.ssh("dpkg-query -W -f '${Package} ${Version}\\n' " + " ".join(new_versions(lab))).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


# --- without the VM -------------------------------------------------------------------------------------
def test_wrong_variable_type_fails_before_any_task(tmp_path):
    rc, out = playbook("-e", "pbs_patch_vmid=not-a-number")
    assert rc != 0, out
    assert "Validating arguments against arg spec" in out and "pbs_patch_vmid" in out, out
    assert "Preflight |" not in out, "a task ran after the argument spec failed:\n" + out


def test_installed_collection_resolves_role_and_modules(tmp_path):
    """ansible-galaxy build + install, then the playbook by its FQCN from outside the checkout."""
    built = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                            str(tmp_path), str(REPO)], env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next(tmp_path.glob("cfolino-pbs-0.1.0.tar.gz"))
    listing = subprocess.run(["tar", "tzf", str(tarball)], capture_output=True, text=True, check=False).stdout.split()
    for member in ("roles/pbs_patch/tasks/main.yml", "playbooks/patch_pbs.yml", "plugins/modules/pbs_gate",
                   "meta/runtime.yml"):
        assert member in listing, member
    assert not [m for m in listing if m.startswith(("lab/", "build/", ".venv/", "tests/unit", "tests/integration"))]
    # --force: the checkout's build/collections link (or an exported collections path) already holds cfolino.pbs 0.1.0
    inst = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--force", "-p",
                           str(tmp_path / "col"), str(tarball)], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300, check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    env = dict(_env(), ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "col"))
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), "cfolino.pbs.patch_pbs",
                        "--syntax-check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert str(tmp_path / "col") in p.stdout, p.stdout  # the installed copy, not the checkout


# --- on the lab VM --------------------------------------------------------------------------------------
@pytest.mark.lab
@pytest.mark.ci
@EVERY_GUEST
def test_patch_cycle_then_second_run(lab, receiver, smtp, tmp_path):
    lab.reset()
    expected = new_versions(lab)
    assert set(expected) == {"proxmox-backup-server", "pbs-lab-conffile", "pbs-lab-kernel"}, expected
    assert expected["proxmox-backup-server"] == lab.profile["pbs_pending"]
    before = versions(lab)
    assert before != expected, "the pristine guest should have upgrades pending: %s" % before
    boot0 = lab.boot_id()

    report = tmp_path / "report.json"
    rc, out = playbook(*notify_args(receiver, report, smtp))
    assert rc == 0, out[-8000:]
    assert SECRET not in out and smtp.password not in out, "a secret was shown in the output"

    # the guest: new versions, local conffile kept, rebooted, services active and enabled
    assert versions(lab) == expected
    conf = lab.ssh("cat /etc/pbs-lab/lab.conf").stdout
    assert "setting = local" in conf and "package default 1.1-1" not in conf, conf
    assert lab.ssh("test -e /etc/pbs-lab/lab.conf.dpkg-dist && echo yes", check=False).stdout.strip() == "yes"
    boot1 = lab.boot_id()
    assert boot1 != boot0
    for unit in ("proxmox-backup", "proxmox-backup-proxy"):
        assert lab.ssh(f"systemctl is-active {unit}").stdout.strip() == "active"
        assert lab.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"

    # the report file and the three notification formats
    r = json.loads(report.read_text())
    assert r["status"] == "patched"
    assert REPORT_FIELDS <= set(r), REPORT_FIELDS - set(r)
    assert TIMING_FIELDS <= set(r["timings"]) and all(r["timings"][k] is not None for k in TIMING_FIELDS)
    assert r["boot_id_before"] == boot0 and r["boot_id_after"] == boot1
    assert {p["name"] for p in r["packages_changed"]} >= set(expected)
    assert r["reboot_required"] is True  # pbs-lab-kernel's postinst asks for it
    assert r["health_summary"]["healthy"] is True
    assert isinstance(r["recent_tasks"], list)
    assert SECRET not in report.read_text()

    posts = {p["path"]: p for p in receiver.posts()}
    assert set(posts) == {"/webhook", "/ntfy", "/gotify/message"}, list(posts)
    hook = posts["/webhook"]
    assert hook["headers"].get("Authorization") == "Bearer " + SECRET
    body = hook["body"]
    assert REPORT_FIELDS <= set(body), REPORT_FIELDS - set(body)
    assert body["status"] == "patched" and body["kernel"] and body["root_free_gb"] is not None
    assert {p["name"] for p in body["packages_changed"]} >= set(expected)
    assert {"gate_s", "upgrade_s", "downtime_s"} <= set(body["timings"])
    ntfy = posts["/ntfy"]
    assert ntfy["headers"].get("Authorization") == "Bearer " + SECRET
    assert ntfy["body"]["topic"] == "pbs-lab" and "patched" in ntfy["body"]["title"]
    for word in ("Kernel", "Root free space", "Reboot-required", "Services", "Packages changed", "Recent PBS tasks",
                 "Timings"):
        assert word in ntfy["body"]["message"], (word, ntfy["body"]["message"])
    gotify = posts["/gotify/message"]
    assert gotify["headers"].get("X-Gotify-Key") == SECRET
    assert gotify["body"]["title"] and gotify["body"]["message"] == ntfy["body"]["message"]

    # the change record: exactly one e-mail, every section and field equal to what the run did
    mails = smtp.messages()
    assert len(mails) == 1, [m["msg"]["Subject"] for m in mails]
    units = ["proxmox-backup", "proxmox-backup-proxy"]
    assert_change_record(mails[0], r, smtp, boot0=boot0, boot1=boot1, before=before, after=versions(lab),
                         units=units, kernel=lab.ssh("uname -r").stdout.strip())
    assert r["delivery"]["email"] == {"enabled": True, "delivered": True, "error": None}
    assert not lab.ssh(f"test -e {r['lease']['where'].split(':', 1)[1]} && echo held", check=False).stdout.strip()
    for text in (mails[0]["raw"].decode(), report.read_text()):
        assert SECRET not in text and smtp.password not in text

    # second run: nothing to upgrade, still reboots and verifies
    # (its webhook answers 500 and its SMTP password is wrong: a failed notification is a warning, not a failed patch)
    report2 = tmp_path / "report2.json"
    wrong = "wrong-" + smtp.password[::-1]
    rc, out = playbook("-e", f"pbs_patch_report_path={report2}",
                       "-e", f"pbs_patch_notify_webhook_url={receiver.url}/fail/webhook",
                       "-e", json.dumps(email_vars(smtp, password=wrong)))
    assert rc == 0, out[-8000:]
    assert "WARNING: the webhook notification was not delivered (HTTP 500" in out, out[-4000:]
    assert "WARNING: the e-mail notification was not delivered (Authentication to 127.0.0.1" in out, out[-4000:]
    assert len(smtp.messages()) == 1 and smtp.auth_failures(), "the wrong password delivered a mail"
    assert wrong not in out and smtp.password not in out and wrong not in report2.read_text()
    r2 = json.loads(report2.read_text())
    assert r2["status"] == "patched" and r2["packages_changed"] == []
    assert re.search(r"Upgrade \| Run the bounded dist-upgrade[^\]]*\] \*+\nok: \[pbs\]", out), "pbs_upgrade reported a change"
    boot2 = lab.boot_id()
    assert boot2 != boot1 and r2["boot_id_after"] == boot2
    assert versions(lab) == expected


@pytest.mark.lab
@pytest.mark.ci
@EVERY_GUEST
def test_check_mode_changes_nothing_and_lists_upgrades(lab, receiver, smtp, tmp_path):
    lab.reset()
    lab.labctl("fault", "agent-unconfigured", "on")  # the guest agent's absence is reported, never fatal
    state0, boot0 = dpkg_state(lab), lab.boot_id()
    report = tmp_path / "check.json"
    rc, out = playbook("--check", *notify_args(receiver, report, smtp))
    assert rc == 0, out[-8000:]
    assert dpkg_state(lab) == state0, "check mode changed the dpkg state"
    assert lab.boot_id() == boot0, "check mode rebooted the guest"
    assert "Check mode: would change" in out and "proxmox-backup-server" in out, out[-6000:]
    assert "would run" in out and "reboot 100" in out
    r = json.loads(report.read_text())
    assert r["status"] == "check_mode" and r["rebooted"] is False
    assert {p["name"] for p in r["packages_would_change"]} >= set(new_versions(lab))
    assert r["guest_agent"]["available"] is False and "No QEMU guest agent configured" in r["guest_agent"]["error"]
    assert "Guest agent: not available" in out
    assert receiver.posts() == [], "check mode sent a notification"
    # no mail; the would-be mail is in the report instead
    assert smtp.messages() == [], "check mode sent a mail"
    would = r["would_be_mail"]
    n = len(r["packages_would_change"])
    assert would["subject"] == f"[pbs_patch] pbs: check mode, would change {n} packages"
    assert (would["from"], would["to"], would["cc"], would["bcc"]) == (MAIL_FROM, [MAIL_TO], [MAIL_CC], [MAIL_BCC])
    view = read_mail(would["html"])
    assert view.headline == f"Check mode: PBS pbs would change {n} package(s); nothing was changed"
    assert view.sections["What ran where and when"].rows["Mode"].startswith("check mode: nothing changed")
    assert sorted(view.sections["Packages that would change"].table().rows) == sorted(
        [[p["name"], p["from"] or "(new)", p["to"] or "(removed)"] for p in r["packages_would_change"]])
    assert view.sections["Reboot"].rows["Boot id"] == boot0
    assert view.sections["Reboot"].rows["Guest agent"].startswith("not available (No QEMU guest agent configured")
    assert all(v["delivered"] is None for v in r["delivery"].values()), r["delivery"]
    assert SECRET not in report.read_text() and smtp.password not in report.read_text() + out


@pytest.mark.lab
def test_wrong_vm_name_is_refused_before_any_change(lab, receiver, tmp_path):
    state0, boot0 = dpkg_state(lab), lab.boot_id()
    rc, out = playbook("-e", "pbs_patch_vm_name=not-the-pbs", *notify_args(receiver, tmp_path / "r.json"))
    assert rc != 0
    assert "is named 'pbs', not 'not-the-pbs'" in out, out[-4000:]
    assert "Run the PBS hard gates" not in out and "Ask Proxmox VE to reboot" not in out
    assert dpkg_state(lab) == state0 and lab.boot_id() == boot0
    assert receiver.posts() == [], "a refused run sent a notification"


@pytest.mark.lab
def test_vm_not_coming_back_fails_with_what_was_last_seen(lab, receiver, smtp, tmp_path):
    lab.reset()
    lab.labctl("fault", "no-return", "on")
    try:
        rc, out = playbook("-e", "pbs_patch_ssh_up_timeout=45", "-e", "pbs_patch_notify_on_failure=true",
                           *notify_args(receiver, tmp_path / "r.json", smtp))
        assert rc != 0
        assert "PBS did not come back" in out and "Last seen: SSH stopped at" in out, out[-5000:]
        assert "status: stopped" in out, out[-5000:]
        assert "FAILED in step 'reboot'" in out
        posts = receiver.posts()
        assert posts and not any("patched" in json.dumps(p["body"]) for p in posts), posts
        assert all(p["body"].get("status") in (None, "failed") for p in posts if p["path"] == "/webhook")
        failure = json.loads((tmp_path / "r.json").read_text())
        assert failure["status"] == "failed" and failure["step"] == "reboot"
        # the opt-in failure mail: one message, FAILED and the step in the subject, what to do next
        mails = smtp.messages()
        assert len(mails) == 1, [m["msg"]["Subject"] for m in mails]
        assert mails[0]["msg"]["Subject"] == "[pbs_patch] pbs: FAILED in step reboot"
        assert mails[0]["msg"]["X-PBS-Patch-Status"] == "failed"
        view = read_mail(mails[0]["html"])
        assert view.sections["What failed"].rows["Step"] == "reboot"
        assert "PBS did not come back" in view.sections["What failed"].rows["Message"]
        changed = view.sections["What changed so far"]
        assert changed.rows["Rebooted"] == "no" and changed.rows["Lease at the end"] == "kept, marked failed"
        assert sorted(r[0] for r in changed.table("Packages changed").rows) == sorted(new_versions(lab))
        todo = " ".join(view.sections["What to do next"].items)
        assert "qm start 100" in todo and "playbooks/clear_lease.yml" in todo
        assert SECRET not in out and smtp.password not in out + mails[0]["raw"].decode()
    finally:
        lab.reset()
