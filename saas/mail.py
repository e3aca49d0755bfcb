"""Outgoing mail: SMTP in production and tests, an outbox folder of .eml files in the embedded
default (no SMTP server configured)."""

from __future__ import annotations

import logging
import os
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from flask import current_app

from saas.config import Settings

log = logging.getLogger("saas.mail")


@dataclass
class SmtpMailer:
    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = False

    def send(self, to: str, subject: str, body: str) -> str:
        msg = _message(self.sender, to, subject, body)
        with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(msg)
        return msg["Message-ID"]


@dataclass
class OutboxMailer:
    """Embedded default: no mail server; each message becomes `<outbox>/<timestamp>-<id>.eml`,
    readable in any mail client or text editor, and the log says where in one line."""

    sender: str
    outbox: Path

    def send(self, to: str, subject: str, body: str) -> str:
        # 8-bit UTF-8 body: the file reads as plain French text, not quoted-printable.
        msg = _message(self.sender, to, subject, body, cte="8bit")
        self.outbox.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        ident = msg["Message-ID"].strip("<>").split("@", 1)[0].replace(".", "-")
        path = self.outbox / f"{stamp}-{ident}.eml"
        # Written whole then renamed: a reader never sees half a message.
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(msg.as_bytes())
        os.replace(partial, path)
        log.warning("courriel non envoyé (pas de serveur SMTP configuré) : « %s » pour %s, "
                    "enregistré dans %s", subject, to, path)
        return msg["Message-ID"]


def _message(sender: str, to: str, subject: str, body: str, cte: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="mutualis")
    msg.set_content(body, cte=cte)
    return msg


def build_mailer(settings: Settings):
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from,
                          settings.smtp_user, settings.smtp_password, settings.smtp_starttls)
    return OutboxMailer(settings.mail_from, Path(settings.instance_path) / "outbox")


def send_mail(to: str, subject: str, body: str) -> str:
    return current_app.extensions["saas_mailer"].send(to, subject, body)
