"""Fixtures for the lab tests: one lab VM per session, stopped in a finalizer even when tests fail.
Helpers and the environment (own state dir and SSH port) are in labhelpers.py."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labhelpers import C, LAB, LABCTL, QM, ROOT, VENV_BIN, Lab, SessionLock, run  # noqa: E402,F401


@pytest.fixture(scope="session")
def lab():
    lab = Lab()
    with SessionLock():
        yield from _lab_session(lab)


def _lab_session(lab):
    try:
        lab.labctl("stop")
        t0 = time.monotonic()
        lab.labctl("build", timeout=1800)
        lab.timings["build"] = time.monotonic() - t0
        t0 = time.monotonic()
        lab.labctl("start", "--fresh", timeout=600)
        lab.timings["start"] = time.monotonic() - t0
        yield lab
    finally:
        subprocess.run([str(LABCTL), "stop"], capture_output=True, timeout=120)


@pytest.fixture
def pristine(lab):
    """A test that changes the guest gets it back in its pristine state afterwards."""
    yield lab
    lab.reset()
