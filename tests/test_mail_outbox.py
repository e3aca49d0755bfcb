"""The embedded default (no SMTP server): sent mail lands in <instance>/outbox as readable .eml."""

from __future__ import annotations

import email
import logging
from email import policy

from saas.config import load_settings
from saas.mail import OutboxMailer, build_mailer


def test_without_smtp_each_message_is_a_readable_eml_file_in_the_instance_outbox(tmp_path, caplog):
    settings = load_settings({"INSTANCE_PATH": str(tmp_path), "SMTP_HOST": ""})
    mailer = build_mailer(settings)
    assert isinstance(mailer, OutboxMailer)
    with caplog.at_level(logging.WARNING, logger="saas.mail"):
        first = mailer.send("agnes@example.org", "Réinitialisation du mot de passe",
                            "Bonjour Agnès,\nvotre lien : https://exemple.fr/r/abc\n")
        mailer.send("bruno@example.org", "Second", "Deuxième message.\n")
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2 and not list((tmp_path / "outbox").glob("*.part"))
    raw = files[0].read_bytes()
    # Plain UTF-8 text a person can read in an editor, not quoted-printable or base64.
    assert "Bonjour Agnès,\nvotre lien : https://exemple.fr/r/abc".encode() in raw
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["Message-ID"] == first and message["To"] == "agnes@example.org"
    assert message["Subject"] == "Réinitialisation du mot de passe"
    assert message.get_content().startswith("Bonjour Agnès")
    # One readable log line per message: subject, recipient and where the file is.
    lines = [r.getMessage() for r in caplog.records if r.name == "saas.mail"]
    assert len(lines) == 2 and "\n" not in lines[0]
    assert "Réinitialisation du mot de passe" in lines[0] and str(files[0]) in lines[0]
