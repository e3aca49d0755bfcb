"""A real SMTP server on localhost (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import socket
from email.message import Message

from aiosmtpd.controller import Controller


class _Inbox:
    def __init__(self):
        self.messages: list[Message] = []
        self.refuse = 0  # the next `refuse` messages get a temporary failure

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 Temporary failure, try again later"
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self):
        self.inbox = _Inbox()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages

    def clear(self) -> None:
        self.inbox.messages.clear()
        self.inbox.refuse = 0

    def refuse_next(self, count: int = 1) -> None:
        """Answer the next `count` messages with a temporary failure (451), as a busy relay."""
        self.inbox.refuse = count

    def last_to(self, address: str) -> Message:
        for msg in reversed(self.messages):
            if address in msg["To"]:
                return msg
        raise AssertionError(f"no mail to {address}; got {[m['To'] for m in self.messages]}")


def body_of(msg: Message) -> str:
    if msg.is_multipart():
        return "\n".join(part.get_payload(decode=True).decode() for part in msg.walk()
                         if part.get_content_type() == "text/plain")
    return msg.get_payload(decode=True).decode()
