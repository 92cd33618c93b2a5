"""The sidecar docs (plugins/modules/<name>.yml) say exactly what the C++ parameter spec accepts."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from ansible_runner import MODULES, REPO, VENV_BIN

SIDECARS = sorted(MODULES.glob("*.yml"))


def spec_of(binary):
    out = subprocess.run([str(binary), "--param-spec"], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_documented_options_match_the_parameter_spec(sidecar):
    binary = MODULES / sidecar.stem
    assert binary.exists(), f"{sidecar.name} documents a module that is not built"
    doc = yaml.safe_load(sidecar.read_text())["DOCUMENTATION"]
    assert doc["module"] == sidecar.stem
    assert not doc["short_description"].endswith(".")
    documented = doc.get("options") or {}
    spec = spec_of(binary)
    assert sorted(documented) == sorted(spec), "documented options differ from the C++ spec"
    for name, want in spec.items():
        got = documented[name]
        assert got.get("type", "str") == want["type"], name
        assert bool(got.get("required", False)) == want["required"], name
        assert got.get("default") == want["default"], name
        assert got.get("choices") == want.get("choices"), name
        assert bool(got.get("no_log", False)) == want["no_log"], name
        if want["type"] == "list":
            assert got.get("elements") == want["elements"], name
        assert got.get("description"), f"{name} has no description"


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_sidecar_has_examples_and_return(sidecar):
    doc = yaml.safe_load(sidecar.read_text())
    assert f"cfolino.pbs.{sidecar.stem}:" in doc["EXAMPLES"]
    for key, value in doc["RETURN"].items():
        assert {"description", "returned", "type"} <= set(value), key


def test_every_built_module_is_documented():
    binaries = [p for p in MODULES.iterdir() if p.is_file() and p.suffix == "" and p.stat().st_mode & 0o111]
    assert binaries
    for binary in binaries:
        assert (MODULES / f"{binary.name}.yml").exists(), f"{binary.name} has no sidecar doc"


# Keys a documentation entry may have (ansible-core's doc schema). A flow mapping whose description holds a comma
# is split by YAML into a second key: such a key is not one of these, and ansible-doc prints it broken.
OPTION_KEYS = {"description", "type", "elements", "required", "default", "choices", "aliases", "no_log",
               "suboptions", "version_added", "version_added_collection", "deprecated"}
RETURN_KEYS = {"description", "type", "elements", "returned", "sample", "contains", "version_added",
               "version_added_collection"}


def ansible_doc(*args):
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1", "HOME": os.environ.get("HOME", "/root")}
    if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        env["ANSIBLE_COLLECTIONS_PATH"] = os.environ["ANSIBLE_COLLECTIONS_PATH"]
    # From the checkout: ansible.cfg resolves cfolino.pbs to it (build/collections).
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def as_lines(description):
    return [description] if isinstance(description, str) else list(description)


def check_entries(entries, allowed, where, nested):
    assert isinstance(entries, dict), where
    for name, entry in entries.items():
        assert isinstance(entry, dict), f"{where}.{name} is not a mapping"
        assert set(entry) <= allowed, f"{where}.{name} has unknown keys {set(entry) - allowed} (a split flow mapping?)"
        lines = as_lines(entry.get("description") or [])
        assert lines and all(isinstance(line, str) and line.strip() for line in lines), f"{where}.{name}: description"
        if allowed is RETURN_KEYS and not nested:
            assert {"returned", "type"} <= set(entry), f"{where}.{name}"
        for child in ("suboptions", "contains"):
            if child in entry:
                check_entries(entry[child], allowed, f"{where}.{name}.{child}", True)


def same_entries(rendered, sidecar, where):
    """What ansible-doc renders is what the sidecar says: the same names and descriptions, at every level."""
    assert sorted(rendered) == sorted(sidecar), where
    for name, entry in sidecar.items():
        assert as_lines(rendered[name]["description"]) == as_lines(entry["description"]), f"{where}.{name}"
        assert rendered[name].get("type", "str") == entry.get("type", "str"), f"{where}.{name}"
        for child in ("suboptions", "contains"):
            if child in entry:
                same_entries(rendered[name][child], entry[child], f"{where}.{name}.{child}")


def names(entries):
    for name, entry in entries.items():
        yield name
        for child in ("suboptions", "contains"):
            yield from names(entry.get(child) or {})


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_ansible_doc_renders_every_option_and_return_value(sidecar):
    """ansible-doc cfolino.pbs.<module>, with this run's ansible-core: every option and return value, as documented."""
    fqcn = f"cfolino.pbs.{sidecar.stem}"
    doc = yaml.safe_load(sidecar.read_text())
    check_entries(doc["DOCUMENTATION"].get("options") or {}, OPTION_KEYS, "options", False)
    check_entries(doc["RETURN"], RETURN_KEYS, "RETURN", False)
    rendered = json.loads(ansible_doc("--json", fqcn))[fqcn]
    same_entries(rendered["doc"].get("options") or {}, doc["DOCUMENTATION"].get("options") or {}, "options")
    same_entries(rendered["return"], doc["RETURN"], "RETURN")
    assert rendered["doc"]["short_description"] == doc["DOCUMENTATION"]["short_description"]
    text = ansible_doc(fqcn)
    assert f"MODULE {fqcn}" in text or f"> {fqcn.upper()}" in text or fqcn in text.splitlines()[0], text[:300]
    for section in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
        assert section in text, section
    for name in list(names(doc["DOCUMENTATION"].get("options") or {})) + list(names(doc["RETURN"])):
        assert re.search(rf"^\s*[-=]?\s*{re.escape(name)}(\s|$)", text, re.MULTILINE), f"{name} is not rendered"
    # And from the module directory of a checkout (ansible-doc -M), as the README says.
    assert sidecar.stem in ansible_doc("-M", str(MODULES), sidecar.stem)
