"""The built collection tarball: what it ships (only what an installed collection needs, with the binaries), and
Galaxy's own import check (galaxy-importer, pinned in tests/requirements/galaxy-importer.txt) on it."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tarfile
import time

import pytest

from ansible_runner import MODULES, REPO
from collection_artifact import build_tarball

sys.path.insert(0, str(REPO / "scripts"))
import toolchain  # noqa: E402  pylint: disable=wrong-import-position

# Everything an installed collection needs (a member matching none of these is a finding).
ALLOWED = ["MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md", "changelogs/changelog.yaml",
           "meta/*.yml", "plugins/modules/*", "roles/*", "playbooks/*.yml", "tests/sanity/ignore-2.*.txt"]
DIRECTORIES = {"meta", "plugins", "plugins/modules", "roles", "playbooks", "changelogs", "tests", "tests/sanity"}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    return build_tarball(tmp_path_factory.mktemp("dist"))


def members(tarball):
    with tarfile.open(tarball) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_tarball_ships_only_what_an_installed_collection_needs(tarball):
    found = members(tarball)
    for name, member in found.items():
        if member.isdir():
            assert name in DIRECTORIES or fnmatch.fnmatch(name, "roles/*"), f"unexpected directory {name}"
            continue
        assert any(fnmatch.fnmatch(name, pattern) for pattern in ALLOWED), f"{name} does not belong in the tarball"
    assert "ansible.cfg" not in found, "the checkout's ansible.cfg would steer the user's runs"
    never = ("lab/", "tests/unit", "tests/integration", "molecule/", "semaphore/", "playbooks/collections", "lib/",
             "modules/", "scripts/", "bench/")
    assert not [n for n in found if n.startswith(never)]
    for name in ("README.md", "LICENSE", "meta/runtime.yml", "playbooks/patch_pbs.yml", "CHANGELOG.md"):
        assert name in found, name
    assert "GNU GENERAL PUBLIC LICENSE" in (REPO / "LICENSE").read_text()[:200]
    # Every role with a README (Galaxy's importer requires one).
    roles = {n.split("/")[1] for n in found if n.startswith("roles/") and n.count("/") >= 2}
    for role in roles:
        assert f"roles/{role}/README.md" in found, f"role {role} has no README"


def test_the_tarball_carries_every_module_binary(tarball):
    found = members(tarball)
    for sidecar in sorted(MODULES.glob("*.yml")):
        binary = found.get(f"plugins/modules/{sidecar.stem}")
        assert binary is not None and binary.isfile(), f"{sidecar.stem} binary missing from the tarball"
        assert binary.mode & 0o111, f"{sidecar.stem} is not executable in the tarball"
        assert f"plugins/modules/{sidecar.name}" in found
    with tarfile.open(tarball) as tar:
        head = tar.extractfile("plugins/modules/pbs_gate").read(4)
    assert head == b"\x7fELF"


def test_no_placeholder_urls_in_the_tarball(tarball):
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else b""
            if not data.startswith(b"\x7fELF"):
                assert b"example.invalid" not in data, f"{member.name} holds a placeholder URL"


def importer_venv():
    try:
        return toolchain.venv(REPO / "tests" / "requirements" / "galaxy-importer.txt")
    except toolchain.Missing as exc:
        pytest.skip(str(exc))


def test_galaxy_importer_accepts_the_tarball(tarball, tmp_path):
    venv = importer_venv()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    started = time.monotonic()
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "galaxy_importer.main", "--print-result", str(tarball)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200, check=False)
    print(f"galaxy-importer: {time.monotonic() - started:.1f} s")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "Importer processing completed successfully" in log, log[-6000:]
    assert not [line for line in log.splitlines() if line.startswith("ERROR")], log[-6000:]
    # Its only warnings are about the sanity ignore files (README, "Galaxy"): ansible-lint's sanity rule permits a
    # fixed list of ignores written for Python modules, and the importer counts every ignore file. Each warning must
    # be one of those, for an entry or a file that exists, and the README must explain both.
    readme = (REPO / "README.md").read_text()
    ignores = {p.name: p.read_text().splitlines() for p in (REPO / "tests" / "sanity").glob("ignore-2.*.txt")}
    expected = set()
    for name, lines in ignores.items():
        expected.add(f"WARNING: Ignore files skip ansible-test sanity tests, found {name} with {len(lines)} statement(s)")
        for number, line in enumerate(lines, start=1):
            assert " validate-modules!skip " in line
            expected.add(f"WARNING: tests/sanity/{name}:{number}: sanity[cannot-ignore]: Ignore file contains "
                         f"validate-modules!skip at line {number}, which is not a permitted ignore.")
    # The importer lints the tarball without its dependencies (galaxy.yml): community.general's mail module is
    # unknown to it, once per task of roles/notify using it (the line and column are the task's).
    uses = (REPO / "roles" / "notify" / "tasks" / "main.yml").read_text().count("community.general.mail:")
    unknown = re.compile(r"WARNING: roles/notify/tasks/main\.yml:\d+:\d+: syntax-check\[unknown-module\]: couldn't "
                         r"resolve module/action 'community\.general\.mail'\. This often indicates a misspelling, "
                         r"missing collection, or incorrect module path\.$")
    found_unknown = {line.strip() for line in log.splitlines() if unknown.match(line.strip())}
    assert len(found_unknown) == uses, (uses, found_unknown)
    expected |= found_unknown
    warnings = {line.strip() for line in log.splitlines() if line.startswith("WARNING")}
    assert warnings == expected, sorted(warnings ^ expected)
    for text in ("sanity[cannot-ignore]", "Ignore files skip ansible-test sanity tests", "syntax-check[unknown-module]"):
        assert text in readme, f"the README does not explain galaxy-importer's '{text}' warnings"
    result = json.loads(log[log.index("{"):log.rindex("}") + 1])
    contents = {(c["content_type"], c["name"]) for c in result["contents"]}
    for role in (p.name for p in (REPO / "roles").iterdir() if p.is_dir()):
        assert ("role", role) in contents, role
    assert ("playbook", "patch_pbs.yml") in contents
    # Galaxy indexes .py/.ps1 plugins only (galaxy_importer/finder.py): our binary modules are not listed on
    # Galaxy's page (README, "Galaxy"). If this changes, the README must say so.
    assert not [c for c in contents if c[0] == "module"], "Galaxy now lists binary modules: update the README"
    assert result["requires_ansible"] == ">=2.16.0"
    assert os.path.basename(str(tarball)).startswith("cfolino-pbs-")
