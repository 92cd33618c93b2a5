"""The sidecar docs (plugins/modules/<name>.yml) say exactly what the C++ parameter spec accepts."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from ansible_runner import MODULES

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


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_ansible_doc_renders_the_sidecar(sidecar):
    from ansible_runner import VENV_BIN
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-M", str(MODULES), sidecar.stem],
                          capture_output=True, text=True, timeout=120, env={"PATH": f"{VENV_BIN}:/usr/bin:/bin",
                                                                           "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert f"MODULE {sidecar.stem}" in proc.stdout
    assert "EXAMPLES" in proc.stdout
    # By its fully qualified name, from the checkout (ansible.cfg resolves cfolino.pbs).
    from ansible_runner import REPO
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), f"cfolino.pbs.{sidecar.stem}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1", "HOME": os.environ.get("HOME", "/root")})
    assert proc.returncode == 0, proc.stderr
    assert f"MODULE cfolino.pbs.{sidecar.stem}" in proc.stdout
