"""Which ansible-core this run tests with (the version stages of scripts/test.sh set PBS_PATCH_ANSIBLE_BIN and say
which release they expect), and the supported range: meta/runtime.yml's lower bound is the oldest release the tests
run, and the README states the releases they prove."""
from __future__ import annotations

import os
import re
import subprocess

from ansible_runner import REPO, VENV_BIN

PINS = sorted((REPO / "tests" / "requirements").glob("ansible-core-*.txt"))


def pinned(path):
    return re.search(r"^ansible-core==(\S+)$", path.read_text(), re.MULTILINE).group(1)


def test_the_toolchain_is_the_one_this_stage_names():
    out = subprocess.run([str(VENV_BIN / "ansible"), "--version"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    version = re.search(r"ansible \[core ([^\]]+)\]", out).group(1)
    python = re.search(r"python version = (\S+)", out).group(1)
    print(f"this run tests with ansible-core {version} on Python {python} ({VENV_BIN})")
    expect = os.environ.get("PBS_PATCH_ANSIBLE_EXPECT")
    if expect:
        assert version.startswith(expect + "."), f"the stage asked for {expect}, got {version}"
    else:
        assert version == pinned(REPO / "requirements.txt"), "the project venv runs the pinned ansible-core"


def test_the_claimed_range_is_the_tested_range():
    runtime = (REPO / "meta" / "runtime.yml").read_text()
    lower = re.search(r"requires_ansible:\s*['\"]>=(\d+\.\d+)", runtime).group(1)
    releases = sorted((tuple(int(x) for x in pinned(p).split(".")[:2]) for p in PINS))
    assert ".".join(map(str, releases[0])) == lower, "the oldest release tested is the one meta/runtime.yml claims"
    readme = (REPO / "README.md").read_text()
    for path in PINS + [REPO / "requirements.txt"]:
        assert pinned(path) in readme, f"the README does not state ansible-core {pinned(path)}"
