"""Static rules over every role task (no Ansible run):

- every task that runs a command, a module on a host, or waits has a task `timeout:` (a hung command or SSH
  connection fails its step instead of hanging the run; issue 11);
- once changes may have begun (upgrade, quiesce, reboot, verify) and in the lease role, every task that talks to
  the PBS host or a PVE node has `ignore_unreachable: true`: ansible-core does not run a block's rescue for an
  UNREACHABLE host, so without it a lost connection would skip the failure alert and leave the lease held
  instead of marked failed. The explicit check after each such task turns it into a failure of its step.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
TASK_FILES = sorted(ROLES.glob("*/tasks/*.yml"))
# Task keywords and the modules that run nothing on a host and cannot hang.
KEYWORDS = {"name", "when", "register", "vars", "tags", "delegate_to", "become", "changed_when", "failed_when",
            "check_mode", "loop", "loop_control", "until", "retries", "delay", "timeout", "ignore_errors",
            "ignore_unreachable", "no_log", "run_once", "notify", "environment", "args", "listen", "become_user",
            "diff", "any_errors_fatal", "throttle", "delegate_facts", "local_action", "with_items", "apply"}
NO_HANG = {"ansible.builtin.set_fact", "ansible.builtin.debug", "ansible.builtin.assert", "ansible.builtin.fail",
           "ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_role",
           "ansible.builtin.import_role", "ansible.builtin.meta"}
# Steps at and after the upgrade: changes have begun. (Quiesce and later files are covered once they exist.)
AFTER_CHANGES = {"upgrade.yml", "quiesce.yml", "quiesce_final.yml", "quiesce_restore.yml", "reboot.yml",
                 "reboot_watch.yml", "verify.yml", "pve_cluster.yml"}
# Handles a lost connection itself (retries, then fails with a message): never UNREACHABLE.
SELF_RECONNECTING = {"ansible.builtin.wait_for_connection"}


def tasks_of(items, where):
    for task in items or []:
        if not isinstance(task, dict):
            continue
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from tasks_of(task.get(part), where)
            continue
        yield task


def module_of(task):
    mods = [k for k in task if k not in KEYWORDS]
    return mods[0] if mods else None


def all_tasks():
    for path in TASK_FILES:
        for task in tasks_of(yaml.safe_load(path.read_text()), path):
            yield path, task


def test_task_files_are_found():
    assert any(p.name == "upgrade.yml" for p in TASK_FILES)


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_task_that_could_hang_has_a_timeout(path):
    missing = []
    for task in tasks_of(yaml.safe_load(path.read_text()), path):
        module = module_of(task)
        if module in NO_HANG or module is None:
            continue
        if "timeout" not in task:
            missing.append(f"{task.get('name')} ({module})")
    assert not missing, f"{path}: tasks without a task timeout: {missing}"


def remote(task):
    return str(task.get("delegate_to", "")).strip() != "localhost"


@pytest.mark.parametrize("path", [p for p in TASK_FILES if p.name in AFTER_CHANGES or p.parent.parent.name ==
                                  "maintenance_lease"], ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_remote_tasks_after_changes_began_survive_an_unreachable_host(path):
    missing = []
    for task in tasks_of(yaml.safe_load(path.read_text()), path):
        module = module_of(task)
        if module in NO_HANG or module in SELF_RECONNECTING or module is None or not remote(task):
            continue
        if task.get("ignore_unreachable") is not True:
            missing.append(f"{task.get('name')} ({module})")
    assert not missing, f"{path}: remote tasks without ignore_unreachable: {missing}"
    text = path.read_text()
    for task in tasks_of(yaml.safe_load(text), path):
        if task.get("ignore_unreachable") is True and task.get("register"):
            # Its loss of connection must be looked at by a later task (an assert, or a message that names it);
            # for a loop, a task reading its results must look at each result's `unreachable`.
            reg = task["register"]
            if "loop" in task:
                readers = [yaml.safe_dump(t) for t in tasks_of(yaml.safe_load(text), path) if f"{reg}.results" in yaml.safe_dump(t)]
                assert any("'unreachable'" in r for r in readers), f"{path}: nothing checks the unreachable results of {reg}"
            else:
                assert f"{reg}.unreachable" in text, f"{path}: nothing checks {reg}.unreachable"
