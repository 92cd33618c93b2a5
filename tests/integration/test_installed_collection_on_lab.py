"""The built collection, installed into a fresh collections path, runs against the lab from another directory
using only FQCNs: `ansible-playbook cfolino.pbs.patch_pbs` and a playbook of its own with `cfolino.pbs.pbs_patch`.

Both run in check mode: every module (the installed static binaries) runs on the guest and nothing changes.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_runner import REPO, VENV_BIN, collections_path

INVENTORY = REPO / "lab" / "inventory.yml"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collection")
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")
    built = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp),
                            str(REPO)], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next(tmp.glob("cfolino-pbs-*.tar.gz"))
    # The dependencies (galaxy.yml) are already installed (from PyPI): the install finds them, Galaxy is not asked.
    env = dict(env, ANSIBLE_COLLECTIONS_PATH=collections_path(tmp / "col"))
    inst = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--force", "-p",
                           str(tmp / "col"), str(tarball)], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    return {"env": env, "dir": workdir, "col": tmp / "col"}


def _run(installed, target, *args):
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), str(target), "--check", *args],
                          cwd=installed["dir"], env=installed["env"], capture_output=True, text=True, timeout=900, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.lab
def test_installed_playbook_by_fqcn_runs_on_the_lab(lab, installed):
    lab.reset()
    boot_id = lab.boot_id()
    rc, out = _run(installed, "cfolino.pbs.patch_pbs")
    assert rc == 0, out[-6000:]
    assert str(installed["col"]) in out or "cfolino.pbs.pbs_patch" in out
    assert "would change 3 package(s)" in out or "Check mode: would change 3 package(s)" in out, out[-4000:]
    assert lab.boot_id() == boot_id


@pytest.mark.lab
def test_own_playbook_with_the_role_fqcn_runs_on_the_lab(lab, installed):
    playbook = installed["dir"] / "site.yml"
    playbook.write_text(
        "- name: Patch PBS with the installed collection\n"
        "  hosts: pbs\n"
        "  serial: 1\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: cfolino.pbs.pbs_patch\n")
    lab.reset()
    rc, out = _run(installed, playbook)
    assert rc == 0, out[-6000:]
    assert "cfolino.pbs.pbs_patch : Preflight | Run the PBS hard gates" in out
    assert "failed=0" in out
