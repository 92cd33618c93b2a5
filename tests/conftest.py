"""Fixtures shared by every test directory: the one lab VM of a test session.

One VM at a time on this 2-core machine: the lab tests, the module and playbook tests on the lab and the
Molecule scenarios all use this session fixture (its own state dir and SSH port, set by labhelpers), and a
machine-wide lock makes a second session wait instead of sharing the VM.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "lab"))
from labhelpers import LABCTL, Lab, SessionLock  # noqa: E402


@pytest.fixture(scope="session")
def lab():
    """The lab VM, built (cached) and freshly started; stopped in a finalizer even when tests fail."""
    lab = Lab()
    with SessionLock():
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
            subprocess.run([str(LABCTL), "stop"], capture_output=True, timeout=120, check=False)


@pytest.fixture
def pristine(lab):
    """A test that changes the guest gets it back in its pristine state afterwards."""
    yield lab
    lab.reset()
