"""Every Molecule scenario (molecule/*/), run with real `molecule test` on the session's lab VM.

Each scenario resets the VM to its pristine snapshot in its prepare step; the session fixture owns
the VM's lifetime (PBS_PATCH_MOLECULE_KEEP_LAB=1 keeps the shared destroy from stopping it).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


def test_every_scenario_is_collected():
    assert "default" in SCENARIOS
    assert len(SCENARIOS) >= 12


@pytest.mark.lab
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(lab, scenario):
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               PBS_PATCH_MOLECULE_KEEP_LAB="1", ANSIBLE_NOCOLOR="1", NO_COLOR="1", PY_COLORS="0")
    started = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL, check=False)
    elapsed = time.monotonic() - started
    print(f"molecule scenario {scenario}: {elapsed:.1f} s")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"molecule test -s {scenario} failed (rc {proc.returncode}):\n{output[-12000:]}"
