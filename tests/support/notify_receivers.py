"""Test helpers for roles/notify's channels: the local receivers and a reader of the HTML mail.

  WebhookReceiver(tmp)              starts tests/support/webhook_receiver.py; .url, .posts(), .stop()
  SmtpServer(tmp, tls="starttls")   starts tests/support/smtp_receiver.py on 127.0.0.1 (a certificate it makes,
                                    AUTH with a random password); .port, .user, .password, .messages(), .stop()
  parse_mail(raw bytes)             the MIME message (email.policy.default) and the text of its HTML part
  read_mail(html)                   MailView: headline, summary, footer, sections {title: Section}, scripts,
                                    external (src/href values), each cell as the text a reader sees
"""
from __future__ import annotations

import email
import email.policy
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

RECEIVER = Path(__file__).resolve().parent / "smtp_receiver.py"
WEBHOOK_RECEIVER = Path(__file__).resolve().parent / "webhook_receiver.py"
VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"


class WebhookReceiver:
    """The local HTTP endpoint that records every notification POST (a path under /fail answers 500)."""

    def __init__(self, tmp: Path):
        self.out = tmp / "posts.jsonl"
        port_file = tmp / "webhook.port"
        self.proc = subprocess.Popen([sys.executable, str(WEBHOOK_RECEIVER), "--out", str(self.out), "--port-file",
                                      str(port_file)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("webhook_receiver did not start")
            time.sleep(0.05)
        self.url = "http://127.0.0.1:%s" % port_file.read_text().strip()

    def posts(self) -> list[dict]:
        return [json.loads(x) for x in self.out.read_text().splitlines() if x.strip()] if self.out.exists() else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class SmtpServer:
    def __init__(self, tmp: Path, tls: str = "starttls", user: str = "pbs-notify"):
        self.dir = tmp / f"smtp-{tls}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = "smtp-pw-" + secrets.token_hex(8)
        pw = self.dir / "password"
        pw.write_text(self.password)
        pw.chmod(0o600)
        port_file = self.dir / "port"
        python = str(VENV_PYTHON if VENV_PYTHON.exists() else sys.executable)
        self.stderr = (self.dir / "stderr.log").open("w")
        self.proc = subprocess.Popen([python, str(RECEIVER), "--out", str(self.dir / "mail"), "--user", user,
                                      "--password-file", str(pw), "--tls", tls, "--port-file", str(port_file)],
                                     stderr=self.stderr)
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("smtp_receiver did not start: " + (self.dir / "stderr.log").read_text())
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def messages(self) -> list[dict]:
        """Every accepted message: the receiver's record plus "raw" (bytes), "msg" and "html"."""
        log = self.dir / "mail" / "messages.jsonl"
        out = []
        for line in log.read_text().splitlines() if log.exists() else []:
            rec = json.loads(line)
            rec["raw"] = (self.dir / "mail" / rec["file"]).read_bytes()
            rec["msg"], rec["html"] = parse_mail(rec["raw"])
            out.append(rec)
        return out

    def auth_failures(self) -> list[dict]:
        log = self.dir / "mail" / "auth-failures.jsonl"
        return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.stderr.close()


def parse_mail(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("html",))
    return msg, (part.get_content() if part is not None else None)


@dataclass
class Table:
    caption: str | None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    empty: str | None = None


@dataclass
class Section:
    text: str | None = None
    rows: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    empty: str | None = None

    def table(self, caption: str | None = None) -> Table:
        return next(t for t in self.tables if caption is None or (t.caption or "").startswith(caption))


@dataclass
class MailView:
    headline: str | None = None
    summary: str | None = None
    footer: str | None = None
    sections: dict[str, Section] = field(default_factory=dict)
    scripts: int = 0
    external: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    """Follows the structure the notify template writes: data-kind marks the headline, summary, footer, section
    text, table captions and "empty" notes; h2 starts a section; th+td rows are label/value; a row of th is a
    table's header."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.view = MailView()
        self.sec: Section | None = None
        self.buf: list[str] | None = None
        self.kind: str | None = None
        self.row: list[tuple[str, str]] | None = None
        self.table: Table | None = None
        self.caption: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.view.scripts += 1
        self.view.external += [a[k] for k in ("src", "href") if a.get(k)]
        if tag in ("h2", "li") or a.get("data-kind"):
            self.buf, self.kind = [], a.get("data-kind") or tag
        elif tag == "table" and self.sec is not None:
            self.table = Table(self.caption)
            self.caption = None
        elif tag == "tr" and self.sec is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.buf, self.kind = [], tag
        elif tag == "br" and self.buf is not None:
            self.buf.append("\n")

    def handle_data(self, data):
        if self.buf is not None:
            self.buf.append(data)

    def handle_endtag(self, tag):
        if self.buf is not None and tag in ("h2", "li", "p", "td", "th"):
            text, kind = "".join(self.buf).strip(), self.kind
            self.buf = None
            if kind == "h2":
                self.sec = self.view.sections.setdefault(text, Section())
            elif kind in ("headline", "summary", "footer"):
                setattr(self.view, kind, text)
            elif kind == "text":
                self.sec.text = text
            elif kind == "caption":
                self.caption = text
            elif kind == "table-empty":
                self.sec.tables.append(Table(self.caption, empty=text))
                self.caption = None
            elif kind == "empty":
                self.sec.empty = text
            elif kind == "li":
                self.sec.items.append(text)
            elif kind in ("td", "th") and self.row is not None:
                self.row.append((kind, text))
        elif tag == "tr" and self.row is not None and self.table is not None:
            kinds = [cell[0] for cell in self.row]
            cells = [cell[1] for cell in self.row]
            if kinds == ["th", "td"] and not self.table.columns:
                self.sec.rows[cells[0]] = cells[1]
            elif kinds and all(k == "th" for k in kinds):
                self.table.columns = cells
            else:
                self.table.rows.append(cells)
            self.row = None
        elif tag == "table" and self.table is not None:
            if self.table.columns:
                self.sec.tables.append(self.table)
            self.table = None


def read_mail(html: str) -> MailView:
    r = _Reader()
    r.feed(html)
    r.close()
    return r.view


def read_mailbox(directory: Path) -> list[dict]:
    """Every message smtp_receiver.py stored in `directory`, as plain data (for Molecule's verify step)."""
    from dataclasses import asdict
    log = directory / "messages.jsonl"
    out = []
    for line in log.read_text().splitlines() if log.exists() else []:
        rec = json.loads(line)
        msg, html = parse_mail((directory / rec["file"]).read_bytes())
        view = read_mail(html or "")
        rec.update(headers={k: str(v) for k, v in msg.items()}, headline=view.headline, footer=view.footer,
                   sections={k: asdict(v) for k, v in view.sections.items()})
        out.append(rec)
    return out


if __name__ == "__main__":
    # notify_receivers.py read DIR: the messages in an smtp_receiver.py mailbox as one JSON list on stdout
    if len(sys.argv) != 3 or sys.argv[1] != "read":
        sys.exit("usage: notify_receivers.py read MAILBOX_DIR")
    print(json.dumps(read_mailbox(Path(sys.argv[2]))))
