"""ansible-lint (production profile) passes on the whole repository, run as a user runs it: from the checkout, with
its configuration, and without --offline (so it installs what the repository asks it to, which must work)."""
from __future__ import annotations

import os
import subprocess

from ansible_runner import REPO, VENV_BIN


def test_ansible_lint_production_profile():
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    proc = subprocess.run([str(VENV_BIN / "ansible-lint"), "--profile", "production"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
