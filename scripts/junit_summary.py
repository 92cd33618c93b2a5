#!/usr/bin/env python
"""Adds up JUnit XML reports (ctest, pytest) into one closing line: `N passed, N failed, N skipped`.

A stage that crashed before writing its report is passed as `--missing NAME` and counts as a failure.
`--write-skipped FILE NAME REASON` writes a report of one skipped case, for a stage that cannot run here.
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET


def count(path: str) -> tuple[int, int, int, list[str]]:
    passed = failed = skipped = 0
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(name)
        elif case.find("skipped") is not None or case.get("status") in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("reports", nargs="*")
    parser.add_argument("--missing", action="append", default=[], help="a stage that produced no report")
    parser.add_argument("--write-skipped", nargs=3, metavar=("FILE", "NAME", "REASON"))
    args = parser.parse_args()
    if args.write_skipped:
        path, name, reason = args.write_skipped
        suite = ET.Element("testsuite", name=name, tests="1", skipped="1")
        case = ET.SubElement(suite, "testcase", classname=name, name=name)
        ET.SubElement(case, "skipped", message=reason)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="unicode")
        return 0
    total = [0, 0, 0]
    all_failures = []
    for path in args.reports:
        try:
            p, f, s, failures = count(path)
        except (OSError, ET.ParseError) as exc:
            p, f, s, failures = 0, 1, 0, [f"{path}: unreadable report ({exc})"]
        print(f"  {path}: {p} passed, {f} failed, {s} skipped")
        total = [total[0] + p, total[1] + f, total[2] + s]
        all_failures += failures
    for stage in args.missing:
        print(f"  {stage}: no report (the stage did not complete)")
        total[1] += 1
        all_failures.append(f"stage {stage}")
    for name in all_failures:
        print(f"  FAILED {name}")
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
