"""The three SMTP listeners: MX (25), submission with STARTTLS (587), implicit TLS (465)."""

from __future__ import annotations

import asyncio
import socket
import threading

from django.conf import settings

from apps.mailauth import dmarc
from apps.mailserver.limits import ConnectionLimiter
from apps.mailserver.listeners import ServerContext
from apps.smtp import replies
from apps.smtp.handler import MailHandler
from apps.smtp.server import MailSMTP

SUBMISSION_LISTENERS = ("submission", "submissions")


async def start(context: ServerContext, name: str, sock: socket.socket) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    implicit_tls = name == "submissions"
    handler = MailHandler(
        submission=name in SUBMISSION_LISTENERS,
        hostname=context.hostname,
        spool_dir=str(settings.DATA_DIR / "spool"),
    )
    (settings.DATA_DIR / "spool").mkdir(parents=True, exist_ok=True)
    limiter = ConnectionLimiter(settings.SMTP_MAX_CONNECTIONS, settings.SMTP_MAX_PER_IP)
    if name == "smtp":  # DMARC checks need the public suffix list
        threading.Thread(target=dmarc.load_suffix_list, name="suffix-list", daemon=True).start()

    def factory() -> MailSMTP:
        return MailSMTP(
            handler,
            listener=name,
            implicit_tls=implicit_tls,
            limiter=limiter,
            stop=context.stop,
            hostname=context.hostname,
            ident="Mailhost ESMTP",
            data_size_limit=settings.MAX_MESSAGE_SIZE,
            enable_SMTPUTF8=True,
            decode_data=False,
            # On 465 the session itself does the handshake (MailSMTP._implicit_tls).
            tls_context=context.tls_for(name),
            timeout=replies.COMMAND_TIMEOUT,
            loop=loop,
        )

    return await loop.create_server(factory, sock=sock)
