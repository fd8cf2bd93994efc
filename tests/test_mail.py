"""The digest by e-mail, delivered to an SMTP server the tests start on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import asyncio
import email
import socket
import sys
from email import policy
from pathlib import Path

import pytest

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

from aggregator.cli import main  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from aggregator.scheduler import Daemon  # noqa: E402
from aggregator.store import open_database  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import webdata  # noqa: E402

DAY = "2026-11-24"


class Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")


@pytest.fixture
def smtp():
    inbox = Inbox()
    users = {"reader": "s3cret"}

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        inbox.port = sock.getsockname()[1]
    controller = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=inbox.port, authenticator=authenticate,
                                     auth_require_tls=False, auth_required=True)
    controller.start()
    yield inbox
    controller.stop()


def _config(tmp_path: Path, port: int, extra: str | None = None) -> Path:
    if extra is None:
        extra = "    username: reader\n    password_env: DIGEST_SMTP_PASSWORD\n"

    path = tmp_path / "feeds.yaml"
    path.write_text(
        "settings:\n  web: {enabled: false}\n  digest_dir: digests\n"
        f"  email:\n    smtp_host: 127.0.0.1\n    smtp_port: {port}\n    security: none\n"
        "    from: digest@aggregator.example\n    to: [reader@example.org, second@example.org]\n" + extra
        + "feeds: []\n"
    )
    return path


def test_digest_email_sends_text_and_inline_styled_html(tmp_path, smtp, capsys):
    data = webdata.build(str(tmp_path / "mail.db"))
    config = _config(tmp_path, smtp.port)
    assert main(["--config", str(config), "--database", data.database, "digest", "--date", DAY, "--email"]) == 0
    assert "mailed the digest of 2026-11-24" in capsys.readouterr().out
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert smtp.envelopes[0].rcpt_tos == ["reader@example.org", "second@example.org"]
    assert message["Subject"] == "News digest — 2026-11-24 (1 story)"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Central bank raises rates for the first time since 2023" in text
    assert "Central bank raises rates for the first time since 2023" in html
    assert "<style" not in html and 'style="' in html  # inline styles only: mail clients drop <style>
    assert "<script" not in html.lower()


def test_hostile_strings_are_inert_in_the_mail(tmp_path, smtp):
    data = webdata.build(str(tmp_path / "evil.db"))
    config = _config(tmp_path, smtp.port)
    day = data.hostile_day  # not today's date: two hours before a run just after midnight is yesterday
    assert main(["--config", str(config), "--database", data.database, "digest", "--date", day, "--email"]) == 0
    html = smtp.messages[0].get_body(("html",)).get_content().lower()
    assert "&lt;script&gt;" in html
    assert "<script" not in html and "<img" not in html and "<svg" not in html
    assert 'href="javascript:' not in html


def test_the_password_comes_from_the_environment(tmp_path, smtp, monkeypatch, capsys):
    data = webdata.build(str(tmp_path / "auth.db"))
    config = _config(tmp_path, smtp.port, "    username: reader\n    password_env: DIGEST_SMTP_PASSWORD\n")
    argv = ["--config", str(config), "--database", data.database, "digest", "--date", DAY, "--email"]
    monkeypatch.delenv("DIGEST_SMTP_PASSWORD", raising=False)
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == ("aggregator: the environment variable DIGEST_SMTP_PASSWORD "
                                               "(email.password_env) is not set")
    unauthenticated = _config(tmp_path, smtp.port, "")  # the server refuses mail without a login
    assert main(["--config", str(unauthenticated), "--database", data.database, "digest", "--email"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"aggregator: sending to 127.0.0.1:{smtp.port} failed: 530") and "\n" not in err
    config = _config(tmp_path, smtp.port, "    username: reader\n    password_env: DIGEST_SMTP_PASSWORD\n")
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")
    assert main(argv) == 0
    assert len(smtp.messages) == 1


def test_an_unreachable_server_is_one_line_and_email_needs_settings(tmp_path, capsys):
    data = webdata.build(str(tmp_path / "down.db"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = _config(tmp_path, port)
    assert main(["--config", str(config), "--database", data.database, "digest", "--email"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aggregator: cannot reach the mail server 127.0.0.1:{port}:") and err.count("\n") == 1
    bare = tmp_path / "bare.yaml"
    bare.write_text("feeds: []\n")
    assert main(["--config", str(bare), "--database", data.database, "digest", "--email"]) == 1
    assert "no 'email' settings" in capsys.readouterr().err


def test_the_daemon_mails_the_digest_and_retries_a_failed_send_at_the_next_digest(tmp_path, smtp, caplog):
    data = webdata.build(str(tmp_path / "daemon.db"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    engine = open_database(data.database)
    daemon = Daemon(engine, load_config(_config(tmp_path, closed_port)))
    asyncio.run(daemon._digest_job())  # the server is down: logged, the daemon goes on
    assert "not mailed" in caplog.text and "retried at the next digest" in caplog.text
    assert smtp.messages == []
    assert (tmp_path / "digests").is_dir()  # the file digest was still written
    daemon.config = load_config(_config(tmp_path, smtp.port))
    asyncio.run(daemon._digest_job())  # the next digest: the missed day and today's both go out
    assert len(smtp.messages) == 1  # the same day twice (the test runs both jobs on one date): sent once
    assert daemon._unmailed == set()
    engine.dispose()
