"""The built collection, installed into a fresh collections path, runs against the lab from another directory
using only FQCNs: `ansible-playbook cfolino.pbs.patch_pbs` and a playbook of its own with `cfolino.pbs.pbs_patch`.

Both run in check mode: every module (the installed static binaries) runs on the guest and nothing changes.
The FQCN playbook runs with every ansible-core the tests prove (the pinned one, and each of
tests/requirements/ansible-core-*.txt, whose venvs scripts/toolchain.py makes): here, in the session that owns the
lab VM, rather than in the version stages of scripts/test.sh, which would each boot the VM again. Each case's id
names the release; one whose interpreter is missing is skipped with the reason.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_runner import REPO, VENV_BIN, collections_path
from collection_artifact import build_tarball

sys.path.insert(0, str(REPO / "scripts"))
import toolchain  # noqa: E402  pylint: disable=wrong-import-position

INVENTORY = REPO / "lab" / "inventory.yml"
RELEASES = ["pinned"] + sorted(p.stem for p in (REPO / "tests" / "requirements").glob("ansible-core-*.txt"))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    return build_tarball(tmp_path_factory.mktemp("dist"))


def toolchain_bin(release: str) -> Path:
    if release == "pinned":
        return VENV_BIN  # the project venv (or the toolchain PBS_PATCH_ANSIBLE_BIN names)
    try:
        return toolchain.venv(REPO / "tests" / "requirements" / f"{release}.txt") / "bin"
    except toolchain.Missing as exc:
        pytest.skip(f"{release}: {exc}")


def install(tarball: Path, tmp: Path, bindir: Path) -> dict:
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")
    # The dependencies (galaxy.yml) are already installed (from PyPI): the install finds them, Galaxy is not asked.
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path(tmp / "col")
    inst = subprocess.run([str(bindir / "ansible-galaxy"), "collection", "install", "--force", "-p", str(tmp / "col"),
                           str(tarball)], cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    workdir = tmp / "elsewhere"
    workdir.mkdir()
    version = subprocess.run([str(bindir / "ansible"), "--version"], env=env, capture_output=True, text=True,
                             timeout=120, check=True).stdout.splitlines()[0]
    print(f"installed collection with {version}")
    return {"env": env, "dir": workdir, "col": tmp / "col", "bin": bindir}


def _run(installed, target, *args):
    proc = subprocess.run([str(installed["bin"] / "ansible-playbook"), "-i", str(INVENTORY), str(target), "--check",
                           *args], cwd=installed["dir"], env=installed["env"], capture_output=True, text=True,
                          timeout=1200, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.lab
@pytest.mark.parametrize("release", RELEASES)
def test_installed_playbook_by_fqcn_runs_on_the_lab(lab, tarball, tmp_path, release):
    installed = install(tarball, tmp_path, toolchain_bin(release))
    lab.reset()
    boot_id = lab.boot_id()
    rc, out = _run(installed, "cfolino.pbs.patch_pbs")
    assert rc == 0, out[-6000:]
    assert str(installed["col"]) in out or "cfolino.pbs.pbs_patch" in out
    assert "would change 3 package(s)" in out or "Check mode: would change 3 package(s)" in out, out[-4000:]
    assert lab.boot_id() == boot_id


@pytest.mark.lab
def test_own_playbook_with_the_role_fqcn_runs_on_the_lab(lab, tarball, tmp_path):
    installed = install(tarball, tmp_path, VENV_BIN)
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
