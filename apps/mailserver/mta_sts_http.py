"""Our MTA-STS policy (RFC 8461 §3.3) at `/.well-known/mta-sts.txt`, in front of the web
application, on the web port and on port 80.

It sits before Django because peers ask with `mta-sts.<domain>` in `Host`, which
ALLOWED_HOSTS does not list; the policy is the same for every domain of ours.
"""

from __future__ import annotations

from typing import Any

from apps.relay import mtasts


class PolicyResponder:
    """ASGI middleware: the policy path answered here, every other request passed to `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != mtasts.POLICY_PATH:
            await self.app(scope, receive, send)
            return
        body = mtasts.own_policy().encode()
        # RFC 8461 §3.2: served as text/plain.
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
