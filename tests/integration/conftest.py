"""Fixtures for integration tests that run the built modules through real Ansible."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ansible_runner import MODULES, VENV_BIN  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from notify_receivers import SmtpServer  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def smtp(tmp_path):
    """A real SMTP server on loopback (aiosmtpd): STARTTLS required (its own certificate), AUTH required."""
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def built_modules():
    gate = MODULES / "pbs_gate"
    if not gate.exists():
        pytest.fail(f"{gate} is not built: run scripts/test.sh (it builds the release preset first)")
    if not (VENV_BIN / "ansible-playbook").exists():
        pytest.fail("no project venv: run scripts/setup.sh")
    return MODULES
