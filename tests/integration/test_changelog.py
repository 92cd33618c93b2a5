"""Changelog fragments are valid antsibull-changelog fragments."""
from __future__ import annotations

import subprocess

from ansible_runner import REPO, VENV_BIN


def test_changelog_fragments_lint():
    fragments = list((REPO / "changelogs" / "fragments").glob("*.yml"))
    assert fragments, "no changelog fragments"
    proc = subprocess.run([str(VENV_BIN / "antsibull-changelog"), "lint"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
