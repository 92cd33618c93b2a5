#!/usr/bin/env python
"""Renders the HTML change record of roles/notify to a PNG with headless Chromium (Debian's `chromium` package).

  scripts/render_mail.py INPUT OUTPUT.png [--width 760]

INPUT is a mail as the SMTP server stored it (.eml: the HTML part is used), a report file written in check mode
(.json: its `would_be_mail.html`), or an .html file. The page is rendered offline: the mail has no external
assets, and Chromium runs with its background networking off. The README's picture (docs/mail-example.png) comes
from a real lab run's mail: `scripts/patch-lab.sh` keeps every mail it receives in build/patch-lab/mail-*/.

Chromium is installed with apt when it is missing (as scripts/setup.sh installs the other Debian packages).
"""
from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# What works on these machines (headless, as root, with a closed network): no sandbox (root), no GPU, and none of
# Chromium's background connections, each of which would be refused.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1", "--mute-audio"]
MEASURE = ("<script>document.title = 'pbs-patch-height=' + "
           "Math.ceil(document.documentElement.getBoundingClientRect().height);</script>")


def html_of(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".json":
        return json.loads(data)["would_be_mail"]["html"]
    if path.suffix == ".eml" or data.lstrip()[:40].lower().startswith((b"content-type", b"mime-version", b"from:")):
        msg = email.message_from_bytes(data, policy=email.policy.default)
        part = msg.get_body(preferencelist=("html",))
        if part is None:
            sys.exit(f"{path}: no HTML part")
        return part.get_content()
    return data.decode("utf-8")


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    print("render_mail: installing Debian's chromium package", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=True, env=env, timeout=600)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], check=True,
                   env=env, timeout=1800)
    return shutil.which("chromium") or sys.exit("render_mail: chromium is still missing after apt-get install")


def run(argv: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv[:1] + CHROMIUM_FLAGS + [f"--user-data-dir={profile}"] + argv[1:],
                          capture_output=True, text=True, timeout=180, check=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--width", type=int, default=760)
    a = ap.parse_args(argv)
    html = html_of(a.input)
    if re.search(r"<script|\bsrc=|<link\b", html, re.I):
        sys.exit("render_mail: the mail holds scripts or external assets; a change record must not")
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="render-mail-") as tmp:
        tmp = Path(tmp)
        page, probe = tmp / "mail.html", tmp / "measure.html"
        page.write_text(html, encoding="utf-8")
        # The height of the whole mail at this width: a copy of the page with a measuring script (never the mail).
        probe.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        r = run([browser, f"--window-size={a.width},800", "--dump-dom", probe.as_uri()], tmp / "profile")
        m = re.search(r"pbs-patch-height=(\d+)", r.stdout)
        if not m:
            sys.exit(f"render_mail: could not measure the page (rc {r.returncode}):\n{r.stderr[-2000:]}")
        height = int(m.group(1))
        a.output.parent.mkdir(parents=True, exist_ok=True)
        r = run([browser, f"--window-size={a.width},{height}", f"--screenshot={a.output.resolve()}", page.as_uri()],
                tmp / "profile")
        if r.returncode != 0 or not a.output.exists():
            sys.exit(f"render_mail: the screenshot failed (rc {r.returncode}):\n{r.stderr[-2000:]}")
    print(f"{a.output}: {a.width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
