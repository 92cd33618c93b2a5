#!/usr/bin/env python
"""A local SMTP server standing in for the mail relay of roles/notify's e-mail channel (aiosmtpd).

Listens on 127.0.0.1 only, with TLS from a certificate it makes itself at start (cert.pem/key.pem in --out), as a
real submission server does:
  --tls starttls (default)  plain SMTP that offers STARTTLS and refuses MAIL and AUTH before it (port 587 style)
  --tls implicit            TLS from the first byte (port 465 style)
AUTH PLAIN/LOGIN is required with the user and the password of --user/--password-file (never on the command line).
Every accepted message is stored as received in --out/NNN.eml, and one line in --out/messages.jsonl:
  {"file", "mail_from", "rcpt_tos", "tls", "auth_user", "time"}
every refused login as one line in --out/auth-failures.jsonl ({"user", "time"}).

  smtp_receiver.py --out DIR --user U --password-file F [--tls starttls|implicit] [--port 0]
                   [--port-file F] [--pid-file F]

With --port 0 (the default) the OS picks a free port; it is written to --port-file once the server listens.
SIGTERM stops it.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOCK = threading.Lock()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pbs-patch test SMTP relay")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


def append(path: Path, record: dict) -> None:
    with LOCK, path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class Store:
    """aiosmtpd handler: every message to a .eml file and a line in messages.jsonl."""

    def __init__(self, out: Path):
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        self.count += 1
        name = "%03d.eml" % self.count
        (self.out / name).write_bytes(envelope.original_content or envelope.content)
        append(self.out / "messages.jsonl", {
            "file": name, "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
            "tls": server.transport.get_extra_info("ssl_object") is not None, "auth_user": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword) else None, "time": time.time()})
        return "250 OK stored as " + name


def authenticator(out: Path, user: str, password: str):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
              and auth_data.password.decode() == password)
        if not ok:
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
            append(out / "auth-failures.jsonl", {"user": login, "time": time.time()})
        # handled=False: aiosmtpd answers 535 5.7.8 for a refused login, as real servers do.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return check


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True, type=Path)
    ap.add_argument("--tls", choices=["starttls", "implicit"], default="starttls")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    ap.add_argument("--pid-file", type=Path)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "messages.jsonl").touch()
    password = a.password_file.read_text().strip()
    cert_file, key_file = make_certificate(a.out)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    handler = Store(a.out)
    check = authenticator(a.out, a.user, password)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory():
        if a.tls == "starttls":
            return SMTP(handler, hostname="smtp.test", tls_context=context, require_starttls=True,
                        auth_required=True, auth_require_tls=True, authenticator=check, loop=loop)
        # TLS from the first byte: aiosmtpd only knows about STARTTLS, so its own TLS check is off here.
        return SMTP(handler, hostname="smtp.test", auth_required=True, auth_require_tls=False,
                    authenticator=check, loop=loop)

    server = loop.run_until_complete(loop.create_server(
        factory, host="127.0.0.1", port=a.port, ssl=context if a.tls == "implicit" else None))
    port = server.sockets[0].getsockname()[1]
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    for path, value in ((a.pid_file, os.getpid()), (a.port_file, port)):
        if path:
            tmp = path.with_suffix(".tmp")
            tmp.write_text("%d\n" % value)
            tmp.replace(path)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
