"""A required role variable that is not given (a Semaphore survey left empty: Semaphore does not enforce required
answers) fails at the argument validation, before any task, with a message naming the variable."""
from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from ansible_runner import REPO, VENV_BIN

SPECS = yaml.safe_load((REPO / "roles" / "pbs_patch" / "meta" / "argument_specs.yml").read_text())
REQUIRED = sorted(name for name, spec in SPECS["argument_specs"]["main"]["options"].items() if spec.get("required"))
VALUES = {"pbs_patch_vmid": "104", "pbs_patch_vm_name": "pbs"}


def run_without(tmp_path, missing):
    inventory = tmp_path / "inventory.yml"
    # pbs and pve on this machine; nothing may run anyway: the validation must stop the play first.
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "pbs_hosts": {"hosts": {"pbs": {"ansible_connection": "local"}}},
        "pve_hosts": {"hosts": {"pve": {"ansible_connection": "local"}}}}}}))
    extra = [f"{name}={VALUES[name]}" for name in REQUIRED if name not in missing]
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/patch_pbs.yml"]
    for item in extra:
        argv += ["-e", item]
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_required_variables_are_known():
    assert set(VALUES) == set(REQUIRED), "a new required variable needs a value here"


@pytest.mark.parametrize("missing", [[name] for name in REQUIRED] + [REQUIRED], ids="+".join)
def test_a_missing_required_variable_fails_before_any_task_naming_it(tmp_path, missing):
    rc, out = run_without(tmp_path, missing)
    assert rc != 0, out
    assert "Validating arguments against arg spec 'main'" in out, out
    assert "missing required arguments" in out, out
    for name in missing:
        assert name in out.split("missing required arguments", 1)[1].splitlines()[0], out
    assert "is undefined" not in out, out
    assert "Preflight |" not in out, "a task ran before the validation failed:\n" + out
