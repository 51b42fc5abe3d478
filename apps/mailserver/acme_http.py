"""The HTTP-01 responder (RFC 8555 §8.3): answers `/.well-known/acme-challenge/<token>`
in front of the web application, on the web port and on port 80.

It sits before Django because the CA asks with the name being validated in `Host`, which
ALLOWED_HOSTS does not list (every domain's `mail.`, `autoconfig.`, `mta-sts.` names).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.mailserver.certstore import Challenges

PREFIX = "/.well-known/acme-challenge/"


class ChallengeResponder:
    """ASGI middleware: challenge paths answered from the shared challenge folder, every
    other request passed to `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        # A small file on the local or shared disk: read on the loop, as a static file is.
        answer = Challenges(settings.ACME_STATE_DIR / "challenges").get(
            scope["path"][len(PREFIX) :]
        )
        status, body = (200, answer) if answer is not None else (404, b"not found\n")
        # §8.3: the body is the key authorization; the CA ignores the media type.
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
