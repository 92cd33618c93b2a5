#!/usr/bin/env python
"""Writes tests/sanity/ignore-2.X.txt for every ansible-core release meta/runtime.yml claims, one entry per module.

  scripts/sanity_ignores.py          rewrite the files from the sidecars in plugins/modules
  scripts/sanity_ignores.py --check  exit 1 when a file differs (tests/integration/test_sanity.py runs this)

The only entries are where ansible-test cannot apply: validate-modules reads every module file as UTF-8 source
(Python or PowerShell) and crashes on our ELF executables. Each module's documentation is its sidecar
plugins/modules/<name>.yml, which validate-modules still checks (on the checkout and on the tarball). The releases
run from requires_ansible's lower bound to NEWEST (the newest release the tests run, tests/requirements).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEWEST = (2, 21)
REASON = ("ELF executable (static C++ binary module): validate-modules reads modules as UTF-8 source and cannot "
          "parse it; its docs are the sidecar {name}.yml, which validate-modules checks")


def releases() -> list[str]:
    runtime = (ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8")
    match = re.search(r"requires_ansible:\s*['\"]?>=\s*(\d+)\.(\d+)", runtime)
    if not match:
        raise SystemExit("meta/runtime.yml: no requires_ansible lower bound")
    major, minor = int(match.group(1)), int(match.group(2))
    if major != NEWEST[0] or minor > NEWEST[1]:
        raise SystemExit(f"requires_ansible {major}.{minor} is outside 2.x up to {NEWEST}: update NEWEST")
    return [f"{major}.{m}" for m in range(minor, NEWEST[1] + 1)]


def content() -> str:
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.yml"))
    return "".join(f"plugins/modules/{name} validate-modules!skip  # {REASON.format(name=name)}\n"
                   for name in modules)


def main() -> int:
    check = "--check" in sys.argv[1:]
    want = content()
    directory = ROOT / "tests" / "sanity"
    expected = {directory / f"ignore-{release}.txt" for release in releases()}
    stale = []
    for path in sorted(expected):
        if not path.exists() or path.read_text(encoding="utf-8") != want:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(want, encoding="utf-8")
    extra = sorted(set(directory.glob("ignore-*.txt")) - expected)
    for path in extra:
        stale.append(path)
        if not check:
            path.unlink()
    if check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"out of date: {names}; run scripts/sanity_ignores.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
