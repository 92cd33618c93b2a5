#!/usr/bin/env python
"""Tool environments the tests need beside the project venv, cached on this machine between runs.

  toolchain.py venv PINS      -> prints the path of a venv with the pinned packages of PINS
                                 (tests/requirements/*.txt); exit 3 with the reason when its Python is missing
  toolchain.py python PINS    -> prints the interpreter PINS asks for (its `# python: X.Y` line), or exit 3
  toolchain.py describe VENV  -> prints "ansible-core X on Python Y" for the venv's toolchain
  toolchain.py semaphore      -> prints the path of the Semaphore server binary (built once by
                                 shared/tools/semaphore/build.sh beside the checkout or a parent of it, or by
                                 $PBS_PATCH_SEMAPHORE_BUILD); exit 3 when that script is absent

The cache lives in $PBS_PATCH_TOOL_CACHE (default ~/.cache/pbs_patch): venvs/<name>-<key>, where the key is a
hash of the pins file and the interpreter's version, so changed pins make a new venv and never reuse a stale one;
semaphore/<version>/semaphore. Nothing here is committed. Parallel runs on one machine take a lock per entry.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MISSING = 3  # exit status: the tool cannot be provided here (the reason is on stderr)
SEMAPHORE_VERSION = "v2.10.32"


class Missing(Exception):
    """The tool cannot be provided on this machine (for example an interpreter is not installed)."""


def cache_root() -> Path:
    return Path(os.environ.get("PBS_PATCH_TOOL_CACHE") or Path.home() / ".cache" / "pbs_patch")


@contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file closes, also when this process dies
        yield


def wanted_python(pins: Path) -> str:
    match = re.search(r"^# python: *(\d+\.\d+) *$", pins.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise SystemExit(f"{pins}: no '# python: X.Y' line")
    return match.group(1)


def find_python(version: str, need_venv: bool = True) -> str:
    """python<version> on PATH, else pyenv's (the CI image has pyenv interpreters); it must really run (a pyenv shim
    of a version that is not activated is on PATH but fails)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)]
    for candidate in filter(None, candidates):
        code = "import sys%s; print('%%d.%%d' %% sys.version_info[:2])" % (", venv" if need_venv else "")
        probe = subprocess.run([candidate, "-c", code],
                               capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise Missing(f"no Python {version} interpreter here (looked for python{version} on PATH and in {pyenv_root})")


def venv(pins: Path) -> Path:
    python = find_python(wanted_python(pins))
    full_version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                                  timeout=60, check=True).stdout
    key = hashlib.sha256(pins.read_bytes() + full_version.encode()).hexdigest()[:12]
    path = cache_root() / "venvs" / f"{pins.stem}-{key}"
    stamp = path / ".complete"
    with locked(path.with_name(path.name + ".lock")):
        if not stamp.exists():
            shutil.rmtree(path, ignore_errors=True)
            print(f"toolchain: creating {path} from {pins.relative_to(ROOT)}", file=sys.stderr)
            subprocess.run([python, "-m", "venv", str(path)], check=True, timeout=600)
            subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "-r", str(pins)], check=True, timeout=1800, stdout=sys.stderr)
            stamp.write_text(str(pins) + "\n", encoding="utf-8")
    return path


def describe(path: Path) -> str:
    code = "import sys, ansible; print('ansible-core %s on Python %s' % (ansible.__version__, sys.version.split()[0]))"
    return subprocess.run([str(path / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                          check=True).stdout.strip()


def semaphore_build_script() -> Path:
    """$PBS_PATCH_SEMAPHORE_BUILD, else shared/tools/semaphore/build.sh beside the checkout or one of its parents
    (the steering repository's folder: ../shared for /work/main, ../../shared for a worktree in /work/wt)."""
    if os.environ.get("PBS_PATCH_SEMAPHORE_BUILD"):
        return Path(os.environ["PBS_PATCH_SEMAPHORE_BUILD"])
    for parent in ROOT.parents:
        candidate = parent / "shared" / "tools" / "semaphore" / "build.sh"
        if candidate.is_file():
            return candidate
    raise Missing(f"no shared/tools/semaphore/build.sh beside {ROOT} or its parents: the Semaphore build script "
                  "is not on this machine")


def semaphore() -> Path:
    build = semaphore_build_script()
    if not build.is_file():
        raise Missing(f"{build} is absent: the Semaphore build script is not on this machine")
    out = cache_root() / "semaphore" / SEMAPHORE_VERSION
    with locked(out.with_name(out.name + ".lock")):
        result = subprocess.run(["bash", str(build), str(out)], capture_output=True, text=True, timeout=1800,
                                check=False)
    if result.returncode != 0:
        raise SystemExit(f"{build} failed (rc {result.returncode}):\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("venv", "python", "describe", "semaphore"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "venv":
            print(venv(Path(argv[1]).resolve()))
        elif argv[0] == "python":
            print(find_python(wanted_python(Path(argv[1]))))
        elif argv[0] == "describe":
            print(describe(Path(argv[1])))
        else:
            print(semaphore())
    except Missing as exc:
        print(f"toolchain: {exc}", file=sys.stderr)
        return MISSING
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
