"""The daily digest by e-mail: multipart text + HTML (styles inline, for mail clients), sent over SMTP.

Settings ``email: {smtp_host, smtp_port, security: starttls|tls|none, username, password_env, from, to}``;
the password is read from the environment variable ``password_env`` names, never from the file.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..config import EmailSettings
from ..digest import digest_title, render_digest
from ..query import Digest
from .render import environment

SMTP_TIMEOUT = 30
DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}


class MailError(Exception):
    """The digest could not be sent; the message is one line."""


def digest_message(digest: Digest, settings: EmailSettings, tz: str = "UTC",
                   base_url: str | None = None) -> EmailMessage:
    """The digest as a message: a plain-text part and an HTML alternative with inline styles."""
    message = EmailMessage()
    message["Subject"] = digest_title(digest, with_count=True)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(render_digest(digest, "text"))
    html = environment(tz).get_template("mail.html").render(digest=digest, base=(base_url or "").rstrip("/"))
    message.add_alternative(html, subtype="html")
    return message


def send_message(message: EmailMessage, settings: EmailSettings) -> None:
    """Send over SMTP as configured; MailError with one line on any failure."""
    password = None
    if settings.password_env:
        password = os.environ.get(settings.password_env)
        if password is None:
            raise MailError(f"the environment variable {settings.password_env} (email.password_env) is not set")
    port = settings.smtp_port or DEFAULT_PORTS[settings.security]
    where = f"{settings.smtp_host}:{port}"
    try:
        context = ssl.create_default_context()
        if settings.security == "tls":
            client = smtplib.SMTP_SSL(settings.smtp_host, port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(settings.smtp_host, port, timeout=SMTP_TIMEOUT)
        with client:
            if settings.security == "starttls":
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, password or "")
            client.send_message(message)
    except smtplib.SMTPException as exc:
        raise MailError(f"sending to {where} failed: {_one_line(exc)}") from None
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"cannot reach the mail server {where}: {_one_line(exc)}") from None


def send_digest(digest: Digest, settings: EmailSettings, tz: str = "UTC", base_url: str | None = None) -> None:
    send_message(digest_message(digest, settings, tz, base_url), settings)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {' '.join(text.split())}"
    return " ".join(str(exc).split()) or type(exc).__name__
