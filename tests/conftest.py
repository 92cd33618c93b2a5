"""Fixtures shared by every test directory: the one lab VM of a test session, per guest.

One VM at a time on this 2-core machine: the lab tests, the module and playbook tests on the lab and the
Molecule scenarios all use this session fixture (its own state dir and SSH port, set by labhelpers), and a
machine-wide lock makes a second session wait instead of sharing the VM.

Guests: a test that uses `lab` runs on the default guest (debian13: Debian 13, PBS 4); marked
`@pytest.mark.guests("debian13", "debian12")` it runs on each of them. `lab` is a session fixture parametrised
by guest, so pytest groups the tests by guest: every debian13 test runs, that VM is stopped, then the debian12
VM is built (cached), started and used by the debian12 tests. PBS_PATCH_LAB_GUESTS=debian13 (a comma list)
runs only those guests' tests; the others are reported as skipped.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "lab"))
from labhelpers import LABCTL, C, Lab, SessionLock  # noqa: E402


def enabled_guests():
    wanted = os.environ.get("PBS_PATCH_LAB_GUESTS")
    return [g for g in C.guests() if not wanted or g in wanted.replace(" ", "").split(",")]


def pytest_generate_tests(metafunc):
    """Parametrise the `lab` fixture with the guests the test is marked for (default: the default guest)."""
    if "lab" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("guests")
    wanted = list(mark.args) if mark else [C.DEFAULT_GUEST]
    unknown = [g for g in wanted if g not in C.guests()]
    if unknown:
        raise pytest.UsageError("%s: unknown lab guest(s) %s (known: %s)"
                                % (metafunc.definition.nodeid, unknown, ", ".join(C.guests())))
    metafunc.parametrize("lab", [g for g in wanted if g in enabled_guests()], indirect=True, scope="session")


@pytest.fixture(scope="session")
def lab(request):
    """The lab VM of one guest, built (cached) and freshly started; stopped in a finalizer even when tests fail.
    Every labctl, ansible and molecule run of the session follows the guest (PBS_PATCH_LAB_GUEST)."""
    guest = getattr(request, "param", C.DEFAULT_GUEST)
    os.environ["PBS_PATCH_LAB_GUEST"] = guest
    lab = Lab(guest)
    with SessionLock():
        try:
            lab.labctl("stop")
            t0 = time.monotonic()
            lab.labctl("build", timeout=1800)
            lab.timings["build"] = time.monotonic() - t0
            t0 = time.monotonic()
            lab.labctl("start", "--fresh", timeout=900)
            lab.timings["start"] = time.monotonic() - t0
            lab.load_info()
            yield lab
        finally:
            subprocess.run([str(LABCTL), "stop"], capture_output=True, timeout=120, check=False)
            sys.stderr.write("\nlab %s timings (s): %s\n" % (guest, {k: round(v, 1) for k, v in lab.timings.items()}))


@pytest.fixture
def pristine(lab):
    """A test that changes the guest gets it back in its pristine state afterwards."""
    yield lab
    lab.reset()


_DIAGNOSED = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """At the first failure of a test on the lab VM, keep what the lab looked like (labctl diagnose: status, QEMU
    processes, the ends of the supervisor, QEMU and console logs) before a later reset changes it: as a section
    of that test's report and in test-results/lab-diagnostics.txt, which scripts/test.sh prints near its end."""
    report = yield
    if report.failed and "lab" in getattr(item, "fixturenames", ()) and not _DIAGNOSED:
        _DIAGNOSED.append(item.nodeid)
        try:
            out = subprocess.run([str(LABCTL), "diagnose"], capture_output=True, text=True, timeout=60,
                                 check=False)
            text = out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            text = "labctl diagnose failed: %s\n" % e
        text = "first failing lab test: %s (%s)\n%s" % (item.nodeid, call.when, text)
        report.sections.append(("lab diagnostics", text))
        results = Path(item.config.rootpath) / "test-results"
        results.mkdir(exist_ok=True)
        (results / "lab-diagnostics.txt").write_text(text)
    return report
