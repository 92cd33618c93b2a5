"""The built collection: one tarball per test session (ansible-galaxy collection build of the checkout, with the
binaries the build put into plugins/modules), and the checkout as ansible-test sees a collection.

Shared by the artifact, importer and sanity tests."""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from ansible_runner import MODULES, REPO, VENV_BIN


def build_tarball(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path",
                           str(dest), str(REPO)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = dest.glob("cfolino-pbs-*.tar.gz")
    return tarball


def unpack_as_collection(tarball: Path, dest: Path) -> Path:
    """ansible-test runs inside ansible_collections/<namespace>/<name>."""
    root = dest / "ansible_collections" / "cfolino" / "pbs"
    root.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="tar")
    return root


def checkout_as_collection(dest: Path) -> Path:
    """The checkout as a collection directory: its files (git's tracked and untracked, not ignored) plus the module
    binaries the build made, which is what `ansible-galaxy collection build` packs from."""
    root = dest / "ansible_collections" / "cfolino" / "pbs"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True, timeout=60).stdout.split(b"\0")
    names = {f.decode() for f in files if f}
    names |= {str(p.relative_to(REPO)) for p in MODULES.iterdir() if p.is_file() and not p.suffix}
    for name in sorted(names):
        src = REPO / name
        if not src.exists():
            continue
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return root
