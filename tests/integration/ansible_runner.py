"""Runs real ansible-playbook (from the project venv) on localhost and returns a module's result.

The ansible toolchain is the project venv's unless PBS_PATCH_ANSIBLE_BIN names another bin directory: the
ansible-core version stages of scripts/test.sh run the collection's own tests with the oldest claimed and the
newest ansible-core that way (tests/requirements/ansible-core-*.txt, venvs made by scripts/toolchain.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT_VENV_BIN = REPO / ".venv" / "bin"
VENV_BIN = Path(os.environ["PBS_PATCH_ANSIBLE_BIN"]) if os.environ.get("PBS_PATCH_ANSIBLE_BIN") else PROJECT_VENV_BIN
MODULES = REPO / "plugins" / "modules"
# Where cfolino.pbs resolves in a checkout: the symlink CMake makes (ansible.cfg's first collections path).
CHECKOUT_COLLECTIONS = REPO / "build" / "collections"


def dependency_collections() -> list[str]:
    """Collections paths holding the collection's dependencies (galaxy.yml), installed from PyPI into the project
    venv (the `ansible` package) because Galaxy is not reachable here. The project venv's ansible-core scans its
    own site-packages; another toolchain (an ansible-core version stage) is pointed at them explicitly."""
    return sorted(str(p.parent) for p in (REPO / ".venv" / "lib").glob("python3*/site-packages/ansible_collections"))


def collections_path(*first: Path | str) -> str:
    """An ANSIBLE_COLLECTIONS_PATH value: `first`, then the dependencies' paths."""
    return ":".join([str(p) for p in first] + dependency_collections())


def snapshot_repo(dest: Path, branch: str = "main") -> Path:
    """A git repository at `dest` holding this checkout's working tree as one commit (tracked and untracked,
    not ignored files, so uncommitted work is tested too): what a user's clone of the repository contains."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True, timeout=60).stdout.split(b"\0")
    dest.mkdir(parents=True)
    for name in filter(None, files):
        src = REPO / os.fsdecode(name)
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target = dest / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    git = ["git", "-c", "user.name=pbs_patch tests", "-c", "user.email=tests@localhost"]
    subprocess.run(git + ["init", "-q", "-b", branch], cwd=dest, check=True, timeout=60)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True, timeout=60)
    subprocess.run(git + ["commit", "-q", "-m", "snapshot of the working tree"], cwd=dest, check=True, timeout=60)
    return dest


@dataclass
class PlaybookRun:
    rc: int
    output: str
    result: dict


def run_module_play(tmp_path: Path, module: str, args: dict, *, check: bool = False, diff: bool = False,
                    env: dict | None = None, timeout: int = 300, host: str = "localhost",
                    inventory: Path | None = None) -> PlaybookRun:
    """Runs one task of `module` with `args` through ansible-playbook; returns the registered result.

    By default on localhost (local connection); with `inventory`, on `host` from it (e.g. the lab's pbs).
    """
    out_file = tmp_path / f"{module}-result.json"
    play = [{
        "name": f"Run {module}",
        "hosts": host,
        "gather_facts": False,
        "tasks": [
            # ignore_unreachable: a lost connection is a result to assert on (an UNREACHABLE host would end
            # the play before the result is saved).
            {"name": f"Call {module}", module: args, "register": "__result",
             "ignore_errors": True, "ignore_unreachable": True, "environment": env or {}},
            {"name": "Save the result", "ansible.builtin.copy": {
                "content": "{{ __result | to_json }}", "dest": str(out_file), "mode": "0600"},
             "check_mode": False, "delegate_to": "localhost"},
        ],
    }]
    playbook = tmp_path / f"{module}-play.yml"
    playbook.write_text(json.dumps(play, indent=2))  # JSON is YAML
    if inventory is None:
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    else:
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc_env = dict(os.environ)
    proc_env.update({
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_LIBRARY": str(MODULES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": str(VENV_BIN / "python"),
    })
    proc = subprocess.run(cmd, cwd=tmp_path, env=proc_env, capture_output=True, text=True, timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    if not out_file.exists():
        raise AssertionError(f"playbook produced no result (rc {proc.returncode}):\n{output}")
    return PlaybookRun(proc.returncode, output, json.loads(out_file.read_text()))


def fake_command(path: Path, body: str) -> Path:
    """Writes an executable shell script standing in for a system command in tests."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path
