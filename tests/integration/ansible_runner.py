"""Runs real ansible-playbook (from the project venv) on localhost and returns a module's result."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
MODULES = REPO / "plugins" / "modules"


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
    proc = subprocess.run(cmd, cwd=tmp_path, env=proc_env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if not out_file.exists():
        raise AssertionError(f"playbook produced no result (rc {proc.returncode}):\n{output}")
    return PlaybookRun(proc.returncode, output, json.loads(out_file.read_text()))


def fake_command(path: Path, body: str) -> Path:
    """Writes an executable shell script standing in for a system command in tests."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path
