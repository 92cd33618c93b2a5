"""The Semaphore UI project backup (semaphore/pbs_patch.backup.json) against Semaphore's restore rules and the
role's real variables, and a simulated Semaphore run of the real playbook.

Semaphore facts used here (semaphoreui/semaphore):
- services/project/types.go BackupFormat: the top-level keys; entries refer to each other by name.
- services/project/backup_marshal.go: JSON keys are the `backup` tag, else the `db` tag.
- services/project/restore.go Verify/Restore: a template's repository must exist, its inventory, environment,
  view and vault keys too when set; a repository's and an inventory's ssh_key/become_key must be key names;
  a repository needs a key (Restore fails without one).
- db/Template.go: app, playbook, arguments (a JSON array string), survey_vars types "" | int | enum | secret;
  Validate() requires an inventory for app ansible.
- services/tasks/LocalJob.go getPlaybookArgs: `-i <inv> [--check] --extra-vars <json> <template arguments...>
  <playbook>`; TaskRunner populates the extra vars from the survey answers, then the environment JSON over them
  (the environment wins on a clash) and adds semaphore_vars.task_details.
- db_lib/AnsibleApp.go: `ansible-galaxy collection install -r <playbook dir>/collections/requirements.yml --force`,
  run from the repository root with HOME=tmp_path and without the environment's env vars (AnsiblePlaybook.go).
These are the v2.10.32 sources; tests/integration/test_semaphore_server.py runs that real server against the lab.
"""
from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from ansible_runner import REPO, VENV_BIN, snapshot_repo

BACKUP_PATH = REPO / "semaphore" / "pbs_patch.backup.json"
SPECS = yaml.safe_load((REPO / "roles" / "pbs_patch" / "meta" / "argument_specs.yml").read_text())
OPTIONS = SPECS["argument_specs"]["main"]["options"]
PLAYBOOK = "playbooks/patch_pbs.yml"
REQUIREMENTS = REPO / "playbooks" / "collections" / "requirements.yml"

# BackupFormat of Semaphore v2.10.32 (services/project/types.go): a template's schedule is its `cron`.
BACKUP_KEYS = {"meta", "templates", "repositories", "keys", "views", "inventories", "environments",
               "integrations", "integration_aliases"}
SURVEY_TYPES = {"", "int", "enum", "secret"}
# Role option type -> the survey type that carries it (str-like options are plain text fields).
SURVEY_TYPE_FOR = {"int": "int", "str": "", "path": ""}
SECRET_OPTIONS = {"pbs_patch_notify_ntfy_token", "pbs_patch_notify_gotify_token", "pbs_patch_notify_webhook_url",
                  "pbs_patch_notify_webhook_headers"}


@pytest.fixture(scope="module")
def backup() -> dict:
    return json.loads(BACKUP_PATH.read_text())


def names(items: list[dict], key: str = "name") -> list[str]:
    return [item[key] for item in items]


def env_json(backup: dict, template: dict) -> dict:
    env = next(e for e in backup["environments"] if e["name"] == template["environment"])
    return json.loads(env["json"])


def env_vars(backup: dict, template: dict) -> dict:
    env = next(e for e in backup["environments"] if e["name"] == template["environment"])
    return json.loads(env.get("env") or "{}")


# --- Shape and Verify rules ---------------------------------------------------------------------------------

def test_backup_has_the_backupformat_keys(backup):
    assert BACKUP_KEYS <= set(backup), f"missing: {BACKUP_KEYS - set(backup)}"
    assert set(backup) <= BACKUP_KEYS, f"not restored by v2.10.32: {set(backup) - BACKUP_KEYS}"
    assert backup["meta"]["name"] == "PBS patching"
    for key in BACKUP_KEYS - {"meta"}:
        assert isinstance(backup[key], list), key


def test_names_are_unique(backup):
    for kind in ("templates", "repositories", "keys", "inventories", "environments"):
        found = names(backup[kind])
        assert len(found) == len(set(found)), f"duplicate names in {kind}: {found}"


def test_references_resolve_by_name(backup):
    keys = set(names(backup["keys"]))
    repos = set(names(backup["repositories"]))
    inventories = set(names(backup["inventories"]))
    environments = set(names(backup["environments"]))
    views = set(names(backup["views"], "title"))
    templates = set(names(backup["templates"]))
    for repo in backup["repositories"]:
        # Verify checks it when set; Restore fails without it: a repository always names a key.
        assert repo.get("ssh_key") in keys, repo
    for inv in backup["inventories"]:
        for ref in ("ssh_key", "become_key"):
            if inv.get(ref) is not None:
                assert inv[ref] in keys, (inv["name"], ref)
    for tpl in backup["templates"]:
        assert tpl["repository"] in repos, tpl["name"]
        assert tpl.get("inventory") in inventories, tpl["name"]  # Template.Validate: ansible needs one
        assert tpl["environment"] in environments, tpl["name"]
        assert "environments" not in tpl, "v2.10.32 drops a template's environments list on restore"
        if tpl.get("view") is not None:
            assert tpl["view"] in views
        for vault in tpl.get("vaults") or []:
            assert vault.get("vault_key") is None or vault["vault_key"] in keys
        assert tpl.get("type", "") != "deploy"
    assert templates


def test_keys_carry_no_secret_material(backup):
    by_name = {k["name"]: k for k in backup["keys"]}
    assert by_name["None"]["type"] == "none"
    ssh_keys = [k for k in backup["keys"] if k["type"] == "ssh"]
    assert ssh_keys, "an SSH key placeholder for the inventory"
    for key in backup["keys"]:
        assert set(key) <= {"name", "type", "owner"}, f"{key['name']} carries more than a placeholder"
    text = BACKUP_PATH.read_text()
    assert "PRIVATE KEY" not in text


def test_repository_and_inventory_placeholders(backup):
    repo = backup["repositories"][0]
    assert repo["git_url"] == "https://example.invalid/pbs_patch.git"
    assert repo["git_branch"] == "main"
    inv = backup["inventories"][0]
    assert inv["type"] == "static-yaml"
    parsed = yaml.safe_load(inv["inventory"])
    groups = parsed["all"]["children"]
    assert "pbs" in groups["pbs_hosts"]["hosts"], "the playbook runs on hosts: pbs"
    pve_hosts = groups["pve_hosts"]["hosts"]
    hosts = {h for g in groups.values() for h in g["hosts"]}
    assert not hosts & set(groups), "a group named like a host makes Ansible warn on every run"
    assert OPTIONS["pbs_patch_pve_host"]["default"] in pve_hosts
    assert groups["pbs_hosts"]["hosts"]["pbs"]["ansible_host"] == "pbs.example.lan"
    assert pve_hosts["pve"]["ansible_host"] == "pve.example.lan"
    assert parsed["all"]["vars"]["ansible_user"] == "root"
    # Host keys: checked against a file the README says how to fill, never accepted blindly.
    common = parsed["all"]["vars"]["ansible_ssh_common_args"]
    assert "UserKnownHostsFile=/etc/semaphore/pbs_patch_known_hosts" in common
    assert "StrictHostKeyChecking=yes" in common
    assert "/etc/semaphore/pbs_patch_known_hosts" in (REPO / "semaphore" / "README.md").read_text()


def test_templates_run_the_playbook_with_valid_arguments(backup):
    by_name = {t["name"]: t for t in backup["templates"]}
    assert set(by_name) == {"Patch PBS", "Patch PBS (dry run)"}
    for tpl in by_name.values():
        assert tpl["app"] == "ansible"
        assert tpl["playbook"] == PLAYBOOK
        assert (REPO / tpl["playbook"]).is_file()
        args = json.loads(tpl["arguments"])
        assert isinstance(args, list) and all(isinstance(a, str) for a in args), tpl["name"]
    assert json.loads(by_name["Patch PBS"]["arguments"]) == []
    # A survey cannot add --check: the dry-run template carries it in its arguments.
    assert json.loads(by_name["Patch PBS (dry run)"]["arguments"]) == ["--check"]
    assert not [t for t in backup["templates"] if t.get("cron")], "PBS patching runs in a dedicated window: no schedule"


# --- Survey and environment against the role's argument spec -----------------------------------------------

def test_survey_vars_are_role_variables_with_matching_types(backup):
    for tpl in backup["templates"]:
        survey = tpl["survey_vars"]
        assert {s["name"] for s in survey} == {"pbs_patch_vmid", "pbs_patch_vm_name", "pbs_patch_pve_host",
                                               "pbs_patch_min_root_free_gb"}
        for var in survey:
            assert var["name"] in OPTIONS, f"{var['name']} is not an option of the role"
            assert var["type"] in SURVEY_TYPES
            option_type = OPTIONS[var["name"]]["type"]
            assert option_type in SURVEY_TYPE_FOR, f"{var['name']}: no survey type for a {option_type} option"
            assert var["type"] == SURVEY_TYPE_FOR[option_type], var["name"]
            if OPTIONS[var["name"]].get("required"):
                assert var["required"] is True, var["name"]
            # v2.10.32 drops survey defaults on restore: an empty field is not sent and the role's default
            # applies, which the description names.
            assert "default_value" not in var, var["name"]
            if not var["required"]:
                assert f"default, {OPTIONS[var['name']]['default']}." in var["description"], var["name"]


def test_required_options_are_covered(backup):
    required = {n for n, o in OPTIONS.items() if o.get("required") and "default" not in o}
    assert required == {"pbs_patch_vmid", "pbs_patch_vm_name"}
    for tpl in backup["templates"]:
        covered = {s["name"] for s in tpl["survey_vars"] if s["required"]} | set(env_json(backup, tpl))
        assert required <= covered, tpl["name"]


def test_environment_is_role_variables_without_secrets(backup):
    for tpl in backup["templates"]:
        extra = env_json(backup, tpl)
        assert isinstance(extra, dict)
        for name, value in extra.items():
            assert name in OPTIONS, f"{name} is not an option of the role"
            assert name not in SECRET_OPTIONS or not value, f"{name}: secrets belong in a Semaphore secret"
        # The environment overrides survey answers on a clash: a survey variable there would be ignored.
        assert not set(extra) & {s["name"] for s in tpl["survey_vars"]}
        env = env_vars(backup, tpl)
        assert env == {}, "the galaxy install does not get them: the repository's ansible.cfg says where"


def test_requirements_are_next_to_the_playbook(backup):
    """Semaphore v2.10 looks for galaxy requirements next to the playbook only."""
    for tpl in backup["templates"]:
        assert (REPO / tpl["playbook"]).parent.joinpath("collections", "requirements.yml").is_file(), tpl["name"]
    assert not (REPO / "collections" / "requirements.yml").exists(), "the root one would never be read"


def test_requirements_install_the_built_collection():
    req = yaml.safe_load(REQUIREMENTS.read_text())
    (entry,) = req["collections"]
    # The modules are binaries built outside git: only a built artifact carries them, never `type: git`.
    assert entry["type"] in {"url", "file", "galaxy"}
    assert entry["name"].endswith(".tar.gz") or entry["name"] == "cfolino.pbs"


# --- A simulated Semaphore run of the real playbook ----------------------------------------------------------

def semaphore_extra_vars(backup: dict, template: dict, answers: dict[str, str], task_id: int = 1) -> dict:
    """What Semaphore passes as --extra-vars: survey answers (strings), the environment JSON over them."""
    assert all(isinstance(v, str) for v in answers.values()), "survey text fields arrive as strings"
    extra = dict(answers)
    extra.update(env_json(backup, template))
    extra["semaphore_vars"] = {"task_details": {"id": task_id, "username": "admin", "url": "http://semaphore/"}}
    return extra


def semaphore_argv(template: dict, inventory: Path, extra: dict) -> list[str]:
    """LocalJob.getPlaybookArgs order: -i, --extra-vars, template arguments, then the playbook."""
    return [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "--extra-vars", json.dumps(extra),
            *json.loads(template["arguments"]), template["playbook"]]


@pytest.fixture(scope="module")
def semaphore_home(tmp_path_factory, backup):
    """The galaxy step as Semaphore v2.10 runs it: from the root of a clone, with HOME=tmp_path and without the
    environment's variables; the requirement names a collection built from this checkout (the URL is a
    placeholder). Then the playbook, also from the clone's root, resolves cfolino.pbs to what was installed."""
    work = tmp_path_factory.mktemp("semaphore")
    home = work / "home"
    home.mkdir()
    env = base_env(home)
    build = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(REPO),
                            "--output-path", str(work)], cwd=work, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = work.glob("cfolino-pbs-*.tar.gz")
    with tarfile.open(tarball) as tar:
        assert "plugins/modules/pbs_gate" in tar.getnames(), "the built collection carries the module binaries"
    clone = snapshot_repo(work / "clone")
    requirements = clone / "playbooks" / "collections" / "requirements.yml"
    req = yaml.safe_load(requirements.read_text())
    req["collections"][0] = {"name": str(tarball), "type": "file"}
    requirements.write_text(yaml.safe_dump(req))
    install = subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-r",
                              "playbooks/collections/requirements.yml", "--force"], cwd=clone, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = clone / "build" / "collections" / "ansible_collections" / "cfolino" / "pbs"
    assert (installed / "plugins" / "modules" / "pbs_gate").is_file(), install.stdout
    assert not installed.is_symlink()
    # The playbook run (which does get the environment's variables: none) reads the same ansible.cfg.
    env.update(env_vars(backup, backup["templates"][0]))
    dump = subprocess.run([str(VENV_BIN / "ansible-config"), "dump", "--only-changed"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    paths_line = next(line for line in dump.stdout.splitlines() if line.startswith("COLLECTIONS_PATHS"))
    assert f"'{clone}/build/collections'" in paths_line, paths_line
    return {"work": work, "home": home, "env": env, "clone": clone}


def base_env(home: Path) -> dict:
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    return env


def local_inventory(work: Path) -> Path:
    """pbs and pve both on this machine; no pvesh or qm there, so preflight stops before any change."""
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "pbs_hosts": {"hosts": {"pbs": {"ansible_connection": "local",
                                        "ansible_python_interpreter": str(VENV_BIN / "python")}}},
        "pve_hosts": {"hosts": {"pve": {"ansible_connection": "local",
                                        "ansible_python_interpreter": str(VENV_BIN / "python"),
                                        "pbs_patch_qm_command": str(work / "absent" / "qm")}}},
    }}}))
    return inventory


def run_as_semaphore(semaphore_home, backup, template_name, answers, *extra_args):
    template = next(t for t in backup["templates"] if t["name"] == template_name)
    extra = semaphore_extra_vars(backup, template, answers)
    # Not Semaphore's value: keeps the report (only written on success or on an opt-in failure alert) in tmp.
    extra["pbs_patch_report_path"] = str(semaphore_home["work"] / "report.json")
    argv = semaphore_argv(template, local_inventory(semaphore_home["work"]), extra)
    argv[1:1] = list(extra_args)
    return subprocess.run(argv, cwd=semaphore_home["clone"], env=semaphore_home["env"], capture_output=True, text=True, timeout=300, check=False)


ANSWERS = {"pbs_patch_vmid": "104", "pbs_patch_vm_name": "pbs", "pbs_patch_pve_host": "pve",
           "pbs_patch_min_root_free_gb": "7"}


def test_playbook_syntax_check_with_semaphore_vars(semaphore_home, backup):
    proc = run_as_semaphore(semaphore_home, backup, "Patch PBS", ANSWERS, "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: playbooks/patch_pbs.yml" in proc.stdout


def test_string_survey_answers_pass_the_argument_spec(semaphore_home, backup):
    proc = run_as_semaphore(semaphore_home, backup, "Patch PBS (dry run)", ANSWERS)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    # The role's argument spec validation runs first and accepts the string answers...
    assert "TASK [cfolino.pbs.pbs_patch : Validating arguments against arg spec 'main'" in out, out
    assert "Validation of arguments failed" not in out, out
    # ...the casts hold (VMID 104 resolved), and preflight stops at the Proxmox VE side (no pvesh on this
    # "node"): nothing was changed.
    assert "No Proxmox VE node could say where VM 104 is" in out, out
    assert "Nothing was changed." in out
    assert "PBS patch run FAILED in step 'preflight'" in out
    assert not (semaphore_home["work"] / "report.json").exists()


def test_a_non_numeric_vmid_is_refused_by_the_argument_spec(semaphore_home, backup):
    proc = run_as_semaphore(semaphore_home, backup, "Patch PBS (dry run)", dict(ANSWERS, pbs_patch_vmid="abc"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Validation of arguments failed" in out, out
    assert "pbs_patch_vmid" in out
    assert "is missing or not executable" not in out, "validation stops the run before preflight"
