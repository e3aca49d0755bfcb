"""Outgoing mail: SMTP in production and tests, the log in the embedded default."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

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
class LogMailer:
    """Embedded default: no mail server, the message is written to the server log."""

    sender: str

    def send(self, to: str, subject: str, body: str) -> str:
        msg = _message(self.sender, to, subject, body)
        log.warning("courriel (non envoyé, pas de serveur SMTP configuré)\n%s", msg.as_string())
        return msg["Message-ID"]


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="mutualis")
    msg.set_content(body)
    return msg


def build_mailer(settings: Settings):
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from,
                          settings.smtp_user, settings.smtp_password, settings.smtp_starttls)
    return LogMailer(settings.mail_from)


def send_mail(to: str, subject: str, body: str) -> str:
    return current_app.extensions["saas_mailer"].send(to, subject, body)
