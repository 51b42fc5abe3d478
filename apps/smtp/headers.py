"""Header work at the end of DATA: trace headers, and the submission fix-ups."""

from __future__ import annotations

import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTPUTF8
from email.utils import format_datetime, getaddresses, make_msgid

from django.utils import timezone

from apps.mailauth.dmarc import PARSER_FAILURES

HEADER_SCAN_LIMIT = 256 * 1024  # header blocks past this are not looked at


def queue_id() -> str:
    return secrets.token_hex(6).upper()


def received(
    *, helo: str, ip: str, hostname: str, protocol: str, qid: str, recipient: str | None
) -> bytes:
    """RFC 5321 §4.4 trace line; protocol names from RFC 3848 (ESMTPSA and friends)."""
    for_clause = f"\r\n\tfor <{recipient}>" if recipient else ""
    line = (
        f"Received: from {_clean(helo)} ([{ip}])\r\n\tby {hostname} (Mailhost) with {protocol}"
        f" id {qid}{for_clause};\r\n\t{format_datetime(timezone.now())}\r\n"
    )
    return line.encode("utf-8", "replace")


def protocol_name(extended: bool, encrypted: bool, authenticated: bool, utf8: bool) -> str:
    name = "ESMTP" if extended else "SMTP"
    if utf8:
        name = "UTF8" + name  # RFC 6531 §3.7.7
    return name + ("S" if encrypted else "") + ("A" if authenticated else "")


def _clean(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in "()\\")[:200] or "unknown"


def header_block(head: bytes) -> bytes:
    """The header section of a message whose start is `head` (up to the blank line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end != -1:
            return head[: end + len(separator)]
    return head


def parse_head(head: bytes) -> EmailMessage:
    """The header fields of a message whose start is `head`, parsed once for the checks
    below (values are parsed only when one is asked for)."""
    parsed = BytesHeaderParser(policy=SMTPUTF8).parsebytes(header_block(head))
    assert isinstance(parsed, EmailMessage)  # what the SMTPUTF8 policy makes
    return parsed


def from_addresses(headers: EmailMessage) -> list[str]:
    """Addresses in the From header(s), lower-cased; none when a From does not parse."""
    try:
        values = [str(v) for v in headers.get_all("From", [])]
        return [addr.lower() for _, addr in getaddresses(values) if addr]
    except PARSER_FAILURES:
        return []


def missing_submission_headers(headers: EmailMessage, sender: str, hostname: str) -> bytes:
    """Message-ID and Date a submission client left out (RFC 6409 §8.2, §8.3)."""
    present = {name.lower() for name in headers}  # names only: values may not parse
    added = b""
    if "message-id" not in present:
        domain = sender.rpartition("@")[2] or hostname
        added += f"Message-ID: {make_msgid(domain=domain)}\r\n".encode()
    if "date" not in present:
        added += f"Date: {format_datetime(timezone.now())}\r\n".encode()
    return added


def display(address: str) -> str:
    return str(Address(addr_spec=address)) if "@" in address else address
