"""The README documents every role variable (its table is generated from argument_specs) and both commands."""
from __future__ import annotations

import subprocess
import sys

from ansible_runner import REPO


def test_variable_table_matches_argument_specs():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_vars.py"), "--check"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_two_commands_exist():
    text = (REPO / "README.md").read_text()
    for command in ("scripts/patch-lab.sh", "scripts/test.sh"):
        assert command in text
        assert (REPO / command).stat().st_mode & 0o111, f"{command} is not executable"
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
