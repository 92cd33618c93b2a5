"""The README's install commands, run exactly as written (the code blocks between the `install:` markers) on a
machine with nothing installed for this user (a fresh HOME), install cfolino.pbs where ansible-playbook finds it from
any directory; the script also works when started from another directory."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from ansible_runner import REPO, VENV_BIN

README = (REPO / "README.md").read_text()
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def blocks(marker):
    """The shell code blocks between <!-- marker:begin --> and <!-- marker:end --> in the README."""
    match = re.search(rf"<!-- {marker}:begin -->(.*?)<!-- {marker}:end -->", README, re.DOTALL)
    assert match, f"README.md has no {marker} markers"
    found = re.findall(r"```sh\n(.*?)```", match.group(1), re.DOTALL)
    assert found, f"no sh block between the {marker} markers"
    return found


def fresh_env(home):
    home.mkdir()
    # Only the tools a user has: ansible-core (here the project venv's) and the build tools; no collection paths.
    env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "ANSIBLE_NOCOLOR": "1", "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")}
    return env


def playbook_finds_the_installed_collection(env, home, cwd):
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(REPO / "lab" / "inventory.yml"),
                           "cfolino.pbs.patch_pbs", "--list-tasks"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Run the PBS hard gates" in proc.stdout
    installed = home / ".ansible" / "collections" / "ansible_collections" / "cfolino" / "pbs"
    assert (installed / "plugins" / "modules" / "pbs_gate").is_file(), "the binaries are installed"
    assert not installed.is_symlink()


@pytest.mark.parametrize("block", range(len(blocks("install"))))
def test_the_readme_install_commands_as_written(tmp_path, block):
    """Each install block, run in the checkout as the README says; then the playbook from another directory."""
    script = blocks("install")[block]
    assert f"cfolino-pbs-{VERSION}.tar.gz" in script or "install-collection.sh" in script
    home = tmp_path / "home"
    env = fresh_env(home)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    playbook_finds_the_installed_collection(env, home, elsewhere)


def test_the_install_script_from_another_directory(tmp_path):
    home = tmp_path / "home"
    env = fresh_env(home)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([str(REPO / "scripts" / "install-collection.sh")], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"cfolino.pbs {VERSION} installed in {home}/.ansible/collections" in proc.stdout
    playbook_finds_the_installed_collection(env, home, elsewhere)
    # And from the checkout itself, where ansible.cfg resolves cfolino.pbs to the checkout: that works as well.
    playbook_finds_the_installed_collection(env, home, REPO)
