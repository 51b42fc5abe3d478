"""Helpers for tests that act as mail clients: TLS contexts and waiting for delivery."""

from __future__ import annotations

import ssl
import time

from django.conf import settings


def client_tls() -> ssl.SSLContext:
    """Trusts the server's self-signed certificate, as a configured client would."""
    context = ssl.create_default_context(cafile=str(settings.TLS_CERT_FILE))
    context.check_hostname = False
    return context


def wait_for_messages(user_id: int, count: int, folder: str = "INBOX", timeout: float = 60):
    """The user's messages in `folder` once there are `count` of them (the pipeline runs
    in a worker process, so filing takes a moment)."""
    from apps.mailstore.models import Message

    deadline = time.monotonic() + timeout
    while True:
        messages = list(
            Message.objects.filter(folder__user_id=user_id, folder__name=folder).order_by("uid")
        )
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.1)


def raw_message(
    sender: str, recipient: str, subject: str = "Hello", body: str = "Hi.\r\n", extra: str = ""
) -> bytes:
    return (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash((sender, subject, body)))}@test>\r\n"
        f"Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n{extra}\r\n{body}"
    ).encode()
