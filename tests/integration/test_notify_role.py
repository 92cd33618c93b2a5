"""roles/notify on the control node, without the lab VM: the real role through ansible-playbook against a real SMTP
server (aiosmtpd, tests/support/smtp_receiver.py: STARTTLS or implicit TLS with a certificate it makes, AUTH) and
the local webhook receiver standing in for the generic webhook, ntfy and Gotify.

What is shown here: one message per run, its MIME headers and envelope, the HTML (sections, rows, tables built from
records, escaping, no scripts or external assets); every secret kept out of the message, the report, the returned
facts and Ansible's output; wrong password, server down and HTTP 500 are warnings, never failures; check mode sends
nothing and writes the would-be mail into the report; the check entry point and the argument specs refuse bad
settings before anything is sent.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_runner import CHECKOUT_COLLECTIONS, REPO, VENV_BIN, collections_path

sys.path.insert(0, str(REPO / "tests" / "support"))
from notify_receivers import SmtpServer, WebhookReceiver, read_mail  # noqa: E402

NTFY_TOKEN = "tk_ntfy-secret-4711"
GOTIFY_TOKEN = "gotify-secret-0815"
HOOK_SECRET = "hook-path-secret-2342"
HEADER_SECRET = "Bearer header-secret-1234"

SECTIONS = [
    {"title": "Identity", "text": "A paragraph & more",
     "rows": [{"label": "Host", "value": "pbs"}, {"label": "Healthy", "value": {"value": True, "status": "ok"}},
              {"label": "Nothing", "value": None}, {"label": "Two lines", "value": ["a", "b"]},
              {"label": "Hostile", "value": "<script>alert(1)</script><img src=http://x/y.png>"}]},
    {"title": "Tables", "tables": [
        {"caption": "From records", "columns": ["Name", "Started (UTC)", "Nested", "State"],
         "records": [{"name": "a", "t": 0, "m": {"type": "offline"}, "ok": True},
                     {"name": "b", "t": 86400, "m": None, "ok": False}],
         "fields": [{"key": "name"}, {"key": "t", "epoch_utc": True}, {"key": "m.type", "default": "-"},
                    {"key": "name", "ok_if": "ok"}]},
        {"caption": "From rows", "columns": ["X", "Y"], "rows": [["1", 2]]},
        {"caption": "Nothing here", "columns": ["X"], "rows": [], "empty": "nothing at all"}]},
    {"title": "Warnings", "items": ["first", "second"]},
    {"title": "Quiet", "empty": "all quiet"},
]


def free_port() -> int:
    """A loopback port nothing listens on (the 'server down' case)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_notify(tmp: Path, variables: dict, *, check: bool = False, entry: str = "main", verbosity: int = 0):
    """The notify role (entry point `entry`) in a play on localhost; returns (rc, output, saved facts or None)."""
    facts = tmp / "facts.json"
    facts.unlink(missing_ok=True)
    play = [{"name": "Notify", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Run the notify role", "ansible.builtin.include_role": {"name": "cfolino.pbs.notify",
                                                                         "tasks_from": entry}},
        {"name": "Save what it returned", "ansible.builtin.copy": {
            "content": "{{ {'result': notify_result | default(none), 'warnings': notify_warnings | default(none),"
                       " 'mail': notify_mail | default(none)} | to_json }}", "dest": str(facts), "mode": "0600"},
         "check_mode": False}]}]
    (tmp / "play.yml").write_text(json.dumps(play))
    (tmp / "vars.json").write_text(json.dumps(variables))
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp / "play.yml"),
           "-e", "@" + str(tmp / "vars.json")] + (["--check"] if check else []) + (["-v"] * verbosity)
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=collections_path(CHECKOUT_COLLECTIONS), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"),
               ANSIBLE_DEPRECATION_WARNINGS="false")
    p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300, check=False)
    return p.returncode, p.stdout + p.stderr, (json.loads(facts.read_text()) if facts.exists() else None)


@pytest.fixture
def hooks(tmp_path):
    r = WebhookReceiver(tmp_path)
    yield r
    r.stop()


def settings(smtp: SmtpServer, hooks: WebhookReceiver | None, tmp: Path, **over) -> dict:
    v = {"notify_title": "pbs: patched <ok> & verified", "notify_status": "ok",
         "notify_headline": "PBS pbs patched", "notify_summary": "Summary & more", "notify_footer": "run 42",
         "notify_text": "plain text", "notify_sections": SECTIONS, "notify_report": {"status": "patched", "n": 1},
         "notify_report_path": str(tmp / "reports" / "report.json"),
         "notify_email_host": "127.0.0.1", "notify_email_port": smtp.port, "notify_email_secure": "starttls",
         "notify_email_username": smtp.user, "notify_email_password": smtp.password,
         "notify_email_from": "PBS patching <pbs-patch@example.org>", "notify_email_to": ["ops@example.org"],
         "notify_email_cc": ["lead@example.org"], "notify_email_bcc": ["audit@example.org"],
         "notify_email_headers": {"X-Run-Id": "run-42"}, "notify_timeout": 10}
    if hooks:
        v.update({"notify_webhook_url": f"{hooks.url}/webhook/{HOOK_SECRET}",
                  "notify_webhook_headers": {"Authorization": HEADER_SECRET},
                  "notify_ntfy_url": hooks.url + "/ntfy", "notify_ntfy_topic": "pbs", "notify_ntfy_token": NTFY_TOKEN,
                  "notify_gotify_url": hooks.url + "/gotify/", "notify_gotify_token": GOTIFY_TOKEN})
    v.update(over)
    return v


def secrets_of(smtp: SmtpServer) -> list[str]:
    return [smtp.password, NTFY_TOKEN, GOTIFY_TOKEN, HOOK_SECRET, HEADER_SECRET.split()[1]]


def assert_no_secret(smtp: SmtpServer, *texts: str):
    for text in texts:
        for secret in secrets_of(smtp):
            assert secret not in text, f"a secret ({secret[:6]}...) was shown or stored:\n{text[-3000:]}"


def test_one_mail_with_every_section_and_the_http_channels(tmp_path, smtp, hooks):
    rc, out, facts = run_notify(tmp_path, settings(smtp, hooks, tmp_path), verbosity=1)
    assert rc == 0, out[-6000:]
    msgs = smtp.messages()
    assert len(msgs) == 1, msgs
    m = msgs[0]
    # the envelope and the session: STARTTLS, the right login, every recipient, Bcc in the envelope only
    assert m["tls"] is True and m["auth_user"] == smtp.user
    assert m["mail_from"] == "pbs-patch@example.org"
    assert sorted(m["rcpt_tos"]) == ["audit@example.org", "lead@example.org", "ops@example.org"]
    msg = m["msg"]
    assert msg["From"] == "PBS patching <pbs-patch@example.org>"
    assert msg["To"] == "ops@example.org" and msg["Cc"] == "lead@example.org" and msg["Bcc"] is None
    assert msg["Subject"] == "pbs: patched <ok> & verified"
    assert msg["X-Run-Id"] == "run-42" and msg["Date"] and msg["Message-ID"].endswith("@example.org>")
    assert msg.get_body(("html",)).get_content_type() == "text/html"
    assert msg.get_body(("html",)).get_content_charset() == "utf-8"

    view = read_mail(m["html"])
    assert view.scripts == 0 and view.external == [], (view.scripts, view.external)
    assert "<script>" not in m["html"] and "&lt;script&gt;" in m["html"]
    assert (view.headline, view.summary, view.footer) == ("PBS pbs patched", "Summary & more", "run 42")
    assert list(view.sections) == ["Identity", "Tables", "Warnings", "Quiet"]
    ident = view.sections["Identity"]
    assert ident.text == "A paragraph & more"
    assert ident.rows == {"Host": "pbs", "Healthy": "yes", "Nothing": "none", "Two lines": "a\nb",
                          "Hostile": "<script>alert(1)</script><img src=http://x/y.png>"}
    tables = view.sections["Tables"]
    rec = tables.table("From records")
    assert rec.columns == ["Name", "Started (UTC)", "Nested", "State"]
    assert rec.rows == [["a", "1970-01-01T00:00:00Z", "offline", "a"], ["b", "1970-01-02T00:00:00Z", "-", "b"]]
    assert tables.table("From rows").rows == [["1", "2"]]
    assert tables.table("Nothing here").empty == "nothing at all"
    assert view.sections["Warnings"].items == ["first", "second"]
    assert view.sections["Quiet"].empty == "all quiet"
    assert "#1a7f37" in m["html"] and "#cf222e" in m["html"]  # ok_if: green for a, red for b

    # the HTTP channels: one POST each, tokens only where they belong (headers, the URL's own path)
    posts = {p["path"].rstrip("/"): p for p in hooks.posts()}
    assert set(posts) == {f"/webhook/{HOOK_SECRET}", "/ntfy", "/gotify/message"}, list(posts)
    assert posts[f"/webhook/{HOOK_SECRET}"]["body"] == {"status": "patched", "n": 1}
    assert posts[f"/webhook/{HOOK_SECRET}"]["headers"]["Authorization"] == HEADER_SECRET
    assert posts["/ntfy"]["headers"]["Authorization"] == "Bearer " + NTFY_TOKEN
    assert posts["/ntfy"]["body"] == {"topic": "pbs", "title": "pbs: patched <ok> & verified", "message": "plain text",
                                      "tags": ["white_check_mark"], "priority": 3}
    assert posts["/gotify/message"]["headers"]["X-Gotify-Key"] == GOTIFY_TOKEN
    assert posts["/gotify/message"]["body"]["extras"]["notify::report"] == {"status": "patched", "n": 1}

    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert report["status"] == "patched" and "would_be_mail" not in report
    assert {k: v["delivered"] for k, v in report["delivery"].items()} == {
        "email": True, "webhook": True, "ntfy": True, "gotify": True}
    assert facts["warnings"] == [] and facts["result"] == report["delivery"]
    assert oct((tmp_path / "reports").stat().st_mode & 0o777) == "0o750"
    assert_no_secret(smtp, out, m["raw"].decode(), json.dumps(report), json.dumps(facts))


def test_implicit_tls(tmp_path):
    smtp = SmtpServer(tmp_path, tls="implicit")
    try:
        rc, out, facts = run_notify(tmp_path, settings(smtp, None, tmp_path, notify_email_secure="tls",
                                                       notify_report_path=""))
        assert rc == 0, out[-6000:]
        msgs = smtp.messages()
        assert len(msgs) == 1 and msgs[0]["tls"] is True and msgs[0]["auth_user"] == smtp.user
        assert facts["result"]["email"] == {"enabled": True, "delivered": True, "error": None}
        assert_no_secret(smtp, out)
    finally:
        smtp.stop()


def test_wrong_password_server_down_and_http_500_are_warnings(tmp_path, smtp, hooks):
    # wrong password: the server refuses the login (535), nothing is delivered, the run goes on
    v = settings(smtp, hooks, tmp_path, notify_email_password="wrong-" + smtp.password[::-1],
                 notify_webhook_url=f"{hooks.url}/fail/{HOOK_SECRET}")
    rc, out, facts = run_notify(tmp_path, v)
    assert rc == 0, out[-6000:]
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN): every attempt was refused
    assert smtp.messages() == [] and {f["user"] for f in smtp.auth_failures()} == {smtp.user}
    assert "WARNING: the e-mail notification was not delivered (Authentication to 127.0.0.1" in out, out[-4000:]
    assert "WARNING: the webhook notification was not delivered (HTTP 500" in out, out[-4000:]
    assert facts["result"]["email"]["delivered"] is False and facts["result"]["webhook"]["delivered"] is False
    assert facts["result"]["ntfy"]["delivered"] is True and facts["result"]["gotify"]["delivered"] is True
    assert len(facts["warnings"]) == 2
    report = (tmp_path / "reports" / "report.json").read_text()
    assert json.loads(report)["delivery"]["email"]["error"].startswith("Authentication to 127.0.0.1")
    assert_no_secret(smtp, out, report, json.dumps(facts), v["notify_email_password"])

    # server down: nothing listens on the port
    port = free_port()
    rc, out, facts = run_notify(tmp_path, settings(smtp, None, tmp_path, notify_email_port=port))
    assert rc == 0, out[-6000:]
    assert "WARNING: the e-mail notification was not delivered (" in out and "Connection refused" in out, out[-4000:]
    assert facts["result"]["email"]["delivered"] is False and "Connection refused" in facts["result"]["email"]["error"]
    assert smtp.messages() == []
    assert_no_secret(smtp, out, (tmp_path / "reports" / "report.json").read_text())


def test_check_mode_sends_nothing_and_reports_the_would_be_mail(tmp_path, smtp, hooks):
    rc, out, facts = run_notify(tmp_path, settings(smtp, hooks, tmp_path, notify_status="check"), check=True)
    assert rc == 0, out[-6000:]
    assert smtp.messages() == [] and hooks.posts() == []
    report = json.loads((tmp_path / "reports" / "report.json").read_text())
    would = report["would_be_mail"]
    assert would["subject"] == "pbs: patched <ok> & verified"
    assert would["from"] == "PBS patching <pbs-patch@example.org>" and would["to"] == ["ops@example.org"]
    assert would["bcc"] == ["audit@example.org"]
    view = read_mail(would["html"])
    assert list(view.sections) == ["Identity", "Tables", "Warnings", "Quiet"]
    assert "#0969da" in would["html"]  # the check-mode colour
    assert all(v["delivered"] is None for v in report["delivery"].values()), report["delivery"]
    assert facts["warnings"] == []
    assert_no_secret(smtp, out, json.dumps(report))


def test_check_entry_point_refuses_incomplete_settings(tmp_path):
    bad = {"notify_variable_prefix": "pbs_patch_notify_", "notify_email_host": "smtp.example.org",
           "notify_email_username": "u", "notify_email_to": ["not-an-address"],
           "notify_ntfy_url": "https://ntfy.example.org", "notify_gotify_url": "https://gotify.example.org",
           "notify_email_headers": {"X-A": "a|b"}}
    rc, out, facts = run_notify(tmp_path, bad, entry="check")
    assert rc != 0
    for text in ("pbs_patch_notify_email_from (the sender) is empty",
                 "must be e-mail addresses: not-an-address",
                 "pbs_patch_notify_email_username and pbs_patch_notify_email_password go together",
                 "pbs_patch_notify_ntfy_topic is empty", "pbs_patch_notify_gotify_token is empty",
                 "pbs_patch_notify_email_headers"):
        assert text in " ".join(out.split()), (text, out[-4000:])
    rc, out, facts = run_notify(tmp_path, {"notify_email_host": "smtp.example.org", "notify_email_from": "a@example.org",
                                           "notify_email_to": ["b@example.org"], "notify_email_secure": "none",
                                           "notify_email_username": "u", "notify_email_password": "p4ss-w0rd-x"},
                                entry="check")
    assert rc != 0 and "would cross the network in clear" in " ".join(out.split()), out[-3000:]
    assert "p4ss-w0rd-x" not in out
    # recipients as one comma-separated string (a Semaphore survey answer) are a list
    rc, out, facts = run_notify(tmp_path, {"notify_email_host": "smtp.example.org", "notify_email_from": "a@example.org",
                                           "notify_email_to": "b@example.org, c@example.org"}, entry="check")
    assert rc == 0 and "Notification channels: e-mail to b@example.org, c@example.org" in out, out[-3000:]


@pytest.mark.parametrize("over, word", [({"notify_email_secure": "ssl"}, "notify_email_secure"),
                                        ({"notify_email_port": "not-a-port"}, "notify_email_port"),
                                        ({"notify_status": "great"}, "notify_status"),
                                        ({"notify_sections": "text"}, "notify_sections")])
def test_argument_specs_reject_bad_values_before_anything_is_sent(tmp_path, over, word):
    v = {"notify_title": "t", "notify_email_password": "never-shown-pw", **over}
    rc, out, facts = run_notify(tmp_path, v)
    assert rc != 0 and "Validating arguments against arg spec" in out and word in out, out[-3000:]
    assert "Render the e-mail" not in out
    assert "never-shown-pw" not in out


def test_title_is_required(tmp_path):
    rc, out, facts = run_notify(tmp_path, {"notify_report": {}})
    assert rc != 0 and "notify_title" in out, out[-3000:]
