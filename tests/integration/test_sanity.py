"""ansible-test sanity passes every test it can run here, on the checkout and on the unpacked tarball.

The only ignore entries are tests/sanity/ignore-2.*.txt's validate-modules skips of the ELF module binaries
(scripts/sanity_ignores.py writes and explains them); the sidecar docs are still validated. ansible-test makes a
venv per sanity test from its own pins and bootstraps pip in it with a script it downloads from a host that is not
reachable from here: tests/support/get_pip.py stands in for it (it installs the requested pip with the wheel bundled
with Python). The sanity venvs stay cached in ~/.ansible/test between runs. Without --python, the tests that run
per Python version run on every version found here; shellcheck needs the shellcheck package (scripts/setup.sh).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ansible_runner import REPO, VENV_BIN
from collection_artifact import build_tarball, checkout_as_collection, unpack_as_collection

sys.path.insert(0, str(REPO / "scripts"))
import toolchain  # noqa: E402  pylint: disable=wrong-import-position

GET_PIP = REPO / "tests" / "support" / "get_pip.py"
NOISE = re.compile(r"^(Collecting|  Downloading|Installing|Successfully|  Using|Using cached| *━)")


def ansible_test():
    exe = VENV_BIN / "ansible-test"
    assert exe.exists(), f"{exe}: ansible-test comes with ansible-core"
    return exe


def place_pip_bootstrap():
    """ansible-test looks for ~/.ansible/test/cache/get_pip_<pip version>.py before downloading it."""
    source = (VENV_BIN.parent / "lib").glob("python3*/site-packages/ansible_test/_internal/python_requirements.py")
    versions = set()
    for path in source:
        versions |= set(re.findall(r"pip='(\d+(?:\.\d+)*)'", path.read_text()))
    assert versions, "ansible-test's pip version not found"
    cache = Path(os.path.expanduser("~/.ansible/test/cache"))
    cache.mkdir(parents=True, exist_ok=True)
    for version in versions:
        target = cache / f"get_pip_{version.replace('.', '_')}.py"
        if not target.exists() or target.read_bytes() != GET_PIP.read_bytes():
            shutil.copyfile(GET_PIP, target)


def interpreters(directory: Path) -> Path:
    """A directory of python<X.Y> links to every interpreter that really runs here. ansible-test runs its per-version
    tests with each python<X.Y> it finds on PATH; pyenv puts shims there for versions that are installed but not
    activated, which fail, so PATH gets these links first."""
    directory.mkdir(parents=True, exist_ok=True)
    for version in ["2.7"] + [f"3.{minor}" for minor in range(8, 15)]:
        try:
            (directory / f"python{version}").symlink_to(toolchain.find_python(version, need_venv=False))
        except toolchain.Missing:
            pass
    return directory


def sanity(root: Path):
    assert shutil.which("shellcheck"), "shellcheck is not installed (scripts/setup.sh installs it)"
    place_pip_bootstrap()
    pythons = interpreters(root.parents[2] / "interpreters")
    env = dict(os.environ, PATH=f"{VENV_BIN}:{pythons}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    proc = subprocess.run([str(ansible_test()), "sanity", "--venv", "--color", "no"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=2400, check=False)
    found = sorted(p.name for p in pythons.iterdir())
    print(f"ansible-test sanity in {root} ({', '.join(found)}): {time.monotonic() - started:.1f} s")
    out = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if not NOISE.match(line))
    ran = re.findall(r'Running sanity test "([^"]+)"', out)
    return proc.returncode, out, ran


def check(rc, out, ran):
    assert rc == 0, out[-12000:]
    assert "ERROR:" not in out, out[-12000:]
    # Every test ansible-test has ran (none skipped for a missing tool), validate-modules and shellcheck included.
    for test in ("validate-modules", "shellcheck", "pylint", "pep8", "yamllint", "shebang", "line-endings", "ignores",
                 "symlinks", "runtime-metadata", "ansible-doc"):
        assert test in ran, f"{test} did not run"
    assert 'Required program "shellcheck" not found' not in out


def test_ignore_files_are_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "sanity_ignores.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_sanity_on_the_checkout(tmp_path):
    check(*sanity(checkout_as_collection(tmp_path)))


def test_sanity_on_the_unpacked_tarball(tmp_path):
    root = unpack_as_collection(build_tarball(tmp_path / "dist"), tmp_path / "unpacked")
    check(*sanity(root))
