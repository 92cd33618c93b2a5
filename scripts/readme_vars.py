#!/usr/bin/env python
"""Writes the README's role-variable table from roles/pbs_patch/meta/argument_specs.yml.

  scripts/readme_vars.py          rewrite the table between the markers in README.md
  scripts/readme_vars.py --check  exit 1 when README.md differs (the test suite runs this)
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "roles" / "pbs_patch" / "meta" / "argument_specs.yml"
README = REPO / "README.md"
START, END = "<!-- role-variables:start -->", "<!-- role-variables:end -->"


def plain(text: str) -> str:
    """Ansible doc markup (C(x), O(x), I(x)) to Markdown code."""
    text = re.sub(r"[COIV]\(([^)]*)\)", r"`\1`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    options = yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, spec in options.items():
        desc = spec.get("description", "")
        desc = " ".join(desc) if isinstance(desc, list) else desc
        if spec.get("required"):
            default = "**required**"
        elif "default" in spec:
            value = spec["default"]
            default = "`" + (yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
                             if not isinstance(value, str) else (value or '""')) + "`"
        else:
            default = "(none)"
        rows.append(f"| `{name}` | {spec.get('type', 'str')} | {plain(default)} | {plain(desc)} |")
    return "\n".join(rows)


def main() -> int:
    text = README.read_text()
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} section", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if "--check" in sys.argv:
        if new != text:
            print("README.md's variable table is out of date: run scripts/readme_vars.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
