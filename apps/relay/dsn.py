"""Delivery status notifications (RFC 3464 multipart/report; RFC 3461 NOTIFY and RET):
built with the `email` package, then filed in the sender's INBOX (or, for a sender
elsewhere, queued back with the null reverse-path)."""

from __future__ import annotations

import email
import email.policy
import io
import logging
from collections.abc import Sequence
from datetime import datetime
from email.generator import BytesGenerator
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid

from django.conf import settings

from apps.relay.models import QueuedMessage

log = logging.getLogger(__name__)

# compat32 without refolding, so a returned message keeps its exact bytes (DKIM and all).
POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=0)
# A failed DSN returns the whole message up to this size without RET, then headers only.
FULL_RETURN_LIMIT = 1024 * 1024

SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
}
EXPLANATIONS = {
    "failed": "Your message could not be delivered to the recipients below; it is attached.",
    "delayed": "Your message has not been delivered yet to the recipients below. Nothing to "
    "do: the mail system keeps trying until {until}.",
    "delivered": "Your message was delivered to the recipients below.",
    "relayed": "Your message was handed to the next server for the recipients below; that "
    "server does not report final delivery.",
}


def _fields(pairs: Sequence[tuple[str, str]]) -> Message:
    block = Message(policy=POLICY)
    for name, value in pairs:
        if value:
            block[name] = value
    return block


def _recipient_fields(
    action: str, recipient: dict, now: datetime, until: datetime | None
) -> Message:
    """RFC 3464 §2.3: one block per recipient."""
    remote = recipient.get("remote_mta") or ""
    orcpt = recipient.get("orcpt") or ""
    return _fields(
        [
            ("Original-Recipient", orcpt.replace(";", "; ", 1) if ";" in orcpt else ""),
            ("Final-Recipient", f"rfc822; {recipient['address']}"),
            ("Action", action),
            ("Status", recipient.get("code") or _default_status(action)),
            ("Remote-MTA", f"dns; {remote}" if remote else ""),
            (
                "Diagnostic-Code",
                f"smtp; {recipient.get('reply')}" if remote and recipient.get("reply") else "",
            ),
            ("Last-Attempt-Date", format_datetime(now)),
            ("Will-Retry-Until", format_datetime(until) if until and action == "delayed" else ""),
        ]
    )


def _default_status(action: str) -> str:
    return {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "2.0.0")


def _human_part(
    action: str, recipients: Sequence[dict], reporting_mta: str, until: datetime | None
) -> MIMEText:
    lines = [
        f"This is the mail system at {reporting_mta}.",
        "",
        EXPLANATIONS[action].format(until=format_datetime(until) if until else "later"),
        "",
    ]
    for recipient in recipients:
        reply = recipient.get("reply") or ""
        lines.append(f"<{recipient['address']}>: {reply}".rstrip(": "))
    return MIMEText("\r\n".join(lines) + "\r\n", "plain", "utf-8", policy=POLICY)


def _returned_part(original: bytes, whole: bool) -> Message:
    """The message itself (message/rfc822) or its header section (text/rfc822-headers)."""
    if whole:
        return MIMEMessage(email.message_from_bytes(original, policy=POLICY), policy=POLICY)
    head = original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    part = MIMENonMultipart("text", "rfc822-headers", policy=POLICY)
    part.set_payload(head.decode("ascii", "surrogateescape"))
    return part


def returns_whole(action: str, ret: str, size: int) -> bool:
    """RFC 3461 §4.3: RET applies to failures; HDRS means headers, FULL the whole message.
    Other notices carry the headers only."""
    if action != "failed" or ret.upper() == "HDRS":
        return False
    return ret.upper() == "FULL" or size <= FULL_RETURN_LIMIT


def build(
    *,
    action: str,
    recipients: Sequence[dict],
    original: bytes,
    to: str,
    ret: str = "",
    envid: str = "",
    arrival: datetime,
    now: datetime,
    reporting_mta: str,
    retry_until: datetime | None = None,
) -> bytes:
    """The DSN for `recipients` that share one `action` (failed, delayed, delivered, relayed)."""
    report = MIMEMultipart("report", report_type="delivery-status", policy=POLICY)
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    report["To"] = to
    report["Subject"] = SUBJECTS[action]
    report["Date"] = format_datetime(now)
    report["Message-ID"] = make_msgid("dsn", domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no auto-reply to this
    report.attach(_human_part(action, recipients, reporting_mta, retry_until))
    status = Message(policy=POLICY)
    status.set_type("message/delivery-status")
    per_message = _fields(
        [
            ("Original-Envelope-Id", envid),
            ("Reporting-MTA", f"dns; {reporting_mta}"),
            ("Arrival-Date", format_datetime(arrival)),
        ]
    )
    blocks = [_recipient_fields(action, r, now, retry_until) for r in recipients]
    status.set_payload([per_message, *blocks])
    report.attach(status)
    report.attach(_returned_part(original, returns_whole(action, ret, len(original))))
    out = io.BytesIO()
    BytesGenerator(out, policy=POLICY, mangle_from_=False).flatten(report)
    return out.getvalue()


# --- sending ------------------------------------------------------------------------------


def send(
    row: QueuedMessage,
    action: str,
    recipients: Sequence[dict],
    *,
    now: datetime,
    retry_until: datetime | None = None,
) -> None:
    """Tell the sender of `row` about `recipients`. Never about a message with the null
    reverse-path: that would be a bounce of a bounce (RFC 5321 §4.5.5, RFC 3461 §6.2)."""
    from apps.mailstore.blobs import blob_store

    if not recipients or not row.mail_from:
        return
    raw = build(
        action=action,
        recipients=recipients,
        original=blob_store().read(row.blob_key),
        to=row.mail_from,
        ret=row.ret,
        envid=row.envid,
        arrival=row.created_at,
        now=now,
        reporting_mta=settings.MAILHOST_HOSTNAME,
        retry_until=retry_until,
    )
    file_or_send(raw, row.mail_from, row.sender_id)


def file_or_send(raw: bytes, address: str, user_id: int | None) -> None:
    """Into the INBOX of the local sender; to a remote one through the queue."""
    from apps.accounts import services as accounts
    from apps.mailstore import services as store
    from apps.mailstore.blobs import blob_store
    from apps.relay import services as relay

    user_ids = [user_id] if user_id else accounts.resolve(address).user_ids
    if user_ids:
        # A notice must reach its sender even at the quota: it is small, and it says why.
        store.deliver(store.NewMessage.from_bytes(raw), user_ids, enforce_quota=False)
        return
    if accounts.is_local_domain(address.rpartition("@")[2]):
        log.warning("DSN for %s: nobody here receives it; dropped", address)
        return
    relay.enqueue(
        blob_key=blob_store().put(raw),
        size=len(raw),
        mail_from="",  # the null reverse-path: nothing ever bounces back (RFC 5321 §4.5.5)
        recipients=[{"address": address, "notify": ["NEVER"]}],
    )
