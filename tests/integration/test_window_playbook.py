"""pbs_window through the real ansible-playbook on localhost.

`proxmox-backup-manager` and `proxmox-tape` are scripts answering from JSON files in the PBS API's shapes
(tests/unit/fixtures); next starts come from this machine's real `systemd-analyze`. Most tests pin "now" with
the module's `now` option so that they are deterministic; one uses the real clock.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ansible_runner import fake_command, run_module_play

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"
MONDAY_0130_UTC = "2026-11-30T01:30:00Z"  # Monday


@pytest.fixture
def pbs(tmp_path):
    """A fake PBS CLI: `<tool> <kind> list --output-format json` prints <state>/<kind>.json, or fails with
    <state>/<kind>.fail as stderr."""
    state = tmp_path / "pbs"
    state.mkdir()
    for kind in ("sync-job", "verify-job", "prune-job", "datastore"):
        (state / f"{kind}.json").write_text("[]")
    body = f"""\
        echo "$*" >> "{state}/calls.log"
        [ "$2 $3 $4" = "list --output-format json" ] || {{ echo "unexpected call: $*" >&2; exit 3; }}
        if [ -e "{state}/$1.fail" ]; then cat "{state}/$1.fail" >&2; exit 255; fi
        cat "{state}/$1.json"
        """
    pbm = fake_command(state / "proxmox-backup-manager", body)
    args = {"pbm_path": str(pbm), "tape_path": str(state / "absent" / "proxmox-tape"), "window_minutes": 60,
            "now": MONDAY_0130_UTC}
    return {"dir": state, "pbm": pbm, "args": args, "body": body}


def window(tmp_path, args, **kw):
    return run_module_play(tmp_path, "pbs_window", args, **kw)


def jobs_file(pbs, kind, jobs):
    (pbs["dir"] / f"{kind}.json").write_text(json.dumps(jobs))


def test_no_jobs_the_window_is_free(tmp_path, pbs):
    r = window(tmp_path, pbs["args"]).result
    assert r["failed"] is False, r["msg"]
    assert r["changed"] is False
    assert r["conflicts"] == []
    assert "is free" in r["msg"]
    assert r["window"]["start"] == "2026-11-30T01:30:00Z"
    assert r["window"]["end"] == "2026-11-30T02:30:00Z"
    assert "tape backup jobs" in r["sources"] and "not installed" in r["sources"]["tape backup jobs"]
    calls = (pbs["dir"] / "calls.log").read_text().splitlines()
    assert calls == [f"{k} list --output-format json" for k in ("sync-job", "verify-job", "prune-job", "datastore")]


def test_a_sync_job_due_inside_the_window_refuses_naming_it_in_local_time_and_utc(tmp_path, pbs):
    (pbs["dir"] / "sync-job.json").write_text((FIXTURES / "sync_job_list.json").read_text())
    jobs_file(pbs, "verify-job", [{"id": "v-sat", "store": "store1", "schedule": "sat 05:00"}])
    args = dict(pbs["args"], now="2026-11-30T02:10:00+01:00")  # Monday 01:10 UTC; Berlin host
    r = window(tmp_path, args, env={"TZ": "Europe/Berlin"}).result
    assert r["failed"] is True
    names = [c["name"] for c in r["conflicts"]]
    # s-offsite-pull runs every 30 min (02:30 CET), s-push "fri..mon 23:30" does not fall in 02:10-03:10.
    assert names == ["sync:s-offsite-pull"]
    assert "sync job 's-offsite-pull'" in r["msg"]
    assert "Mon 2026-11-30 02:30:00 CET" in r["msg"]
    assert "2026-11-30T01:30:00Z" in r["msg"]
    assert "in 20 min" in r["msg"]
    assert r["window"]["start_local"] == "2026-11-30 02:10:00 CET"
    ids = {j["id"]: j for j in r["jobs"]}
    assert ids["s-push"]["next_start"] == "2026-11-30T22:30:00Z"  # fri..mon wraps: Monday 23:30 CET
    assert ids["v-sat"]["next_start_local"] == "Sat 2026-12-05 05:00:00 CET"
    assert {i["id"] for i in r["ignored_jobs"]} == {"s-manual"}


def test_a_job_due_after_the_window_proceeds_and_is_reported_as_next(tmp_path, pbs):
    jobs_file(pbs, "prune-job", [{"id": "p1", "store": "store1", "schedule": "mon..fri 02:31", "keep-last": 3}])
    r = window(tmp_path, pbs["args"]).result
    assert r["failed"] is False, r["msg"]
    assert r["next_job"]["id"] == "p1"
    assert r["next_job"]["next_start"] == "2026-11-30T02:31:00Z"
    assert r["next_job"]["minutes_from_now"] == 61
    jobs_file(pbs, "prune-job", [{"id": "p1", "store": "store1", "schedule": "mon..fri 02:30", "keep-last": 3}])
    r = window(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert "prune job 'p1'" in r["msg"]


def test_real_clock_a_job_in_ten_minutes_refuses(tmp_path, pbs):
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
    jobs_file(pbs, "verify-job", [{"id": "v-soon", "store": "store1", "schedule": soon.strftime("*-*-* %H:%M")}])
    args = {k: v for k, v in pbs["args"].items() if k != "now"}
    r = window(tmp_path, args, env={"TZ": "UTC"}).result
    assert r["failed"] is True
    assert "verify job 'v-soon'" in r["msg"]
    r = window(tmp_path, dict(args, window_minutes=5), env={"TZ": "UTC"}).result
    assert r["failed"] is False, r["msg"]


def test_gc_schedule_and_prune_schedule_of_datastores(tmp_path, pbs):
    (pbs["dir"] / "datastore.json").write_text((FIXTURES / "datastore_list.json").read_text())
    r = window(tmp_path, dict(pbs["args"], now="2026-11-29T23:30:00Z")).result
    assert r["failed"] is True
    assert [c["name"] for c in r["conflicts"]] == ["garbage_collection:store1", "prune:store1"]


def test_pve_vzdump_jobs_that_target_this_pbs(tmp_path, pbs):
    # Read as the role reads pvesh's output: data, never templated (the notes-template holds "{{guestname}}").
    args = dict(pbs["args"], now="2026-11-30T20:30:00Z",
                pve_backup_jobs=f"{{{{ lookup('file', '{FIXTURES / 'pvesh_cluster_backup.json'}') | from_json }}}}",
                pve_storage=f"{{{{ lookup('file', '{FIXTURES / 'pvesh_storage.json'}') | from_json }}}}",
                pbs_servers=["pbs.lab.lan"])
    r = window(tmp_path, args, env={"TZ": "UTC"}).result
    assert r["failed"] is True
    # The all-guests job at 21:00 to pbs1; not the disabled every-15-minutes job, not the other PBS's job.
    assert [c["name"] for c in r["conflicts"]] == ["vzdump:backup-5d0c1a2b-7e61"]
    assert "vzdump of all guests to storage pbs1" in r["msg"]
    ignored = {i["id"]: i["reason"] for i in r["ignored_jobs"]}
    assert ignored["backup-disabled-01"] == "disabled (enabled: 0)"
    assert "not this PBS" in ignored["backup-other-pbs-04"]
    # The PVE node's zone: 21:00 in New York is 02:00 UTC, outside a 20:30 UTC window.
    r = window(tmp_path, dict(args, pve_timezone="America/New_York"), env={"TZ": "UTC"}).result
    assert r["failed"] is False, r["msg"]
    assert {j["id"]: j["next_start"] for j in r["jobs"]}["backup-5d0c1a2b-7e61"] == "2026-12-01T02:00:00Z"


def test_an_unknown_time_zone_is_refused_never_taken_as_utc(tmp_path, pbs):
    # systemd-analyze and glibc take TZ=Europe/Berlln for UTC without a word: the module must refuse it.
    r = window(tmp_path, dict(pbs["args"], pve_timezone="Europe/Berlln")).result
    assert r["failed"] is True
    assert "unknown time zone 'Europe/Berlln' (pve_timezone)" in r["msg"]
    assert "never taken as UTC" in r["msg"]
    args = dict(pbs["args"], gather_pbs_jobs=False,
                jobs=[{"id": "omv-rsync", "kind": "omv", "schedule": "mon 02:00", "timezone": "America/NewYork"}])
    r = window(tmp_path, args).result
    assert r["failed"] is True
    assert "unknown time zone 'America/NewYork' (omv job 'omv-rsync')" in r["msg"]
    args["jobs"][0]["timezone"] = "America/New_York"
    assert "unknown time zone" not in window(tmp_path, args).result.get("msg", "")


def test_pve_jobs_need_the_storage_list(tmp_path, pbs):
    r = window(tmp_path, dict(pbs["args"], pve_backup_jobs=[])).result
    assert r["failed"] is True
    assert "pve_storage" in r["msg"]


def test_operator_jobs_and_ignore_jobs(tmp_path, pbs):
    args = dict(pbs["args"], gather_pbs_jobs=False,
                jobs=[{"id": "omv-rsync", "kind": "omv", "schedule": "mon 02:00", "detail": "NAS rsync"}])
    r = window(tmp_path, args).result
    assert r["failed"] is True
    assert "omv job 'omv-rsync' [NAS rsync]" in r["msg"]
    assert not (pbs["dir"] / "calls.log").exists()  # PBS not asked
    r = window(tmp_path, dict(args, ignore_jobs=["omv:omv-rsync"])).result
    assert r["failed"] is False, r["msg"]
    assert r["ignored_jobs"] == [{"kind": "omv", "id": "omv-rsync", "reason": "in ignore_jobs"}]


def test_blackouts_weekly_and_absolute(tmp_path, pbs):
    r = window(tmp_path, dict(pbs["args"], blackouts=["Mon 02:00-04:00"])).result
    assert r["failed"] is True
    assert r["conflicts"][0]["kind"] == "blackout"
    assert "blackout 'Mon 02:00-04:00'" in r["msg"]
    r = window(tmp_path, dict(pbs["args"], blackouts=["Mon 02:31-04:00", "2026-12-24T00:00/2026-12-26T23:59"])).result
    assert r["failed"] is False, r["msg"]
    r = window(tmp_path, dict(pbs["args"], blackouts=["2026-11-30T00:00Z/2026-11-30T01:31Z"])).result
    assert r["failed"] is True


def test_deadline(tmp_path, pbs):
    r = window(tmp_path, dict(pbs["args"], deadline="2026-11-30T02:00:00Z")).result
    assert r["failed"] is True
    assert "after the deadline" in r["msg"]
    assert r["conflicts"][0]["kind"] == "deadline"
    r = window(tmp_path, dict(pbs["args"], deadline="2026-11-30T02:30:00Z")).result
    assert r["failed"] is False, r["msg"]
    assert r["deadline"]["at"] == "2026-11-30T02:30:00Z"


def test_a_failed_listing_fails_closed(tmp_path, pbs):
    (pbs["dir"] / "prune-job.fail").write_text("Error: unable to parse config\n")
    r = window(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert "cannot list prune jobs" in r["msg"]
    assert "unable to parse config" in r["msg"]
    assert "refusing" in r["msg"]


def test_garbage_from_a_listing_is_never_no_jobs(tmp_path, pbs):
    (pbs["dir"] / "sync-job.json").write_text("┌──────┐ id │")
    r = window(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert "cannot read PBS sync jobs" in r["msg"]


def test_a_hanging_listing_is_bounded(tmp_path, pbs):
    fake_command(pbs["pbm"], "sleep 30\n")
    r = window(tmp_path, dict(pbs["args"], command_timeout=2)).result
    assert r["failed"] is True
    assert "timed out after 2 s" in r["msg"]


def test_no_pbs_tooling_fails(tmp_path, pbs):
    r = window(tmp_path, dict(pbs["args"], pbm_path=str(tmp_path / "nope"))).result
    assert r["failed"] is True
    assert "not a Proxmox Backup Server host" in r["msg"]


def test_tape_jobs_when_proxmox_tape_is_installed(tmp_path, pbs):
    tape_state = pbs["dir"] / "tape"
    tape_state.mkdir()
    (tape_state / "backup-job.json").write_text((FIXTURES / "tape_backup_job_list.json").read_text())
    tape = fake_command(pbs["dir"] / "proxmox-tape", pbs["body"].replace(str(pbs["dir"]), str(tape_state)))
    r = window(tmp_path, dict(pbs["args"], tape_path=str(tape), now="2026-12-04T21:30:00Z"), env={"TZ": "UTC"}).result
    assert r["failed"] is True
    assert "tape_backup job 't-weekly'" in r["msg"]
    (tape_state / "backup-job.fail").write_text("Error: tape config unreadable\n")
    r = window(tmp_path, dict(pbs["args"], tape_path=str(tape))).result
    assert r["failed"] is True
    assert "cannot list tape backup jobs" in r["msg"]


def test_a_schedule_systemd_cannot_read_fails_closed_naming_the_job(tmp_path, pbs):
    jobs_file(pbs, "verify-job", [{"id": "v-odd", "store": "s", "schedule": "mon..fri 25:00"}])
    r = window(tmp_path, pbs["args"]).result
    assert r["failed"] is True
    assert "verify job 'v-odd'" in r["msg"]
    assert "systemd cannot evaluate calendar event 'mon..fri 25:00'" in r["msg"]
    assert "cannot tell when 1 job(s) start" in r["msg"]


def test_check_mode_reads_and_refuses_alike(tmp_path, pbs):
    jobs_file(pbs, "sync-job", [{"id": "s", "store": "a", "remote-store": "b", "schedule": "*:0/15"}])
    r = window(tmp_path, pbs["args"], check=True).result
    assert r["failed"] is True
    assert r["changed"] is False


@pytest.mark.parametrize("args, words", [
    ({"blackouts": ["someday"]}, ["blackout 'someday'", "START/END"]),
    ({"deadline": "soon"}, ["'soon' is not an ISO 8601 date-time"]),
    ({"jobs": ["daily"]}, ["jobs", "list of dicts"]),
    ({"jobs": [{"id": "x"}]}, ["without 'schedule'"]),
    ({"window_minutes": 0}, ["window_minutes", ">= 1"]),
    ({"windows": 5}, ["Unsupported parameters: windows"]),
])
def test_bad_parameters_are_clear_failures(tmp_path, pbs, args, words):
    r = window(tmp_path, dict(pbs["args"], **args)).result
    assert r["failed"] is True
    for word in words:
        assert word in r["msg"], r["msg"]
