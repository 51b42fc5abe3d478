"""What one delivery attempt learned about each recipient, read from SMTP replies (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# RFC 3463 §2: class.subject.detail at the start of the reply text (RFC 2034 §4).
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

# RFC 3463 status codes the relay reports itself.
OTHER_TEMPORARY = "4.0.0"
NETWORK_TEMPORARY = "4.4.1"  # §3.5: no answer from host
ROUTING_TEMPORARY = "4.4.3"  # §3.5: directory server failure (DNS)
TOO_LONG = "4.4.7"  # §3.5: delivery time expired
BAD_DESTINATION = "5.1.2"  # §3.2: bad destination system address (no such domain)
NULL_MX = "5.1.10"  # RFC 7505 §4.2: the domain accepts no mail
BAD_MAILBOX = "5.1.1"  # §3.2: bad destination mailbox address
MAILBOX_FULL = "4.2.2"  # §3.3: mailbox full
TOO_BIG = "5.3.4"  # §3.4: message too big for system
SECURITY_TEMPORARY = "4.7.5"  # §3.8: cryptographic failure (TLS the policy demands)
NON_ASCII_ADDRESS = "5.6.7"  # RFC 6531 (RFC 5248 registry): non-ASCII address refused
NON_ASCII_HEADERS = "5.6.9"  # RFC 6531 (RFC 5248 registry): UTF-8 headers not carried


class Kind(StrEnum):
    DELIVERED = "delivered"  # final delivery here (our own store)
    RELAYED = "relayed"  # accepted by a peer that does not do DSN (RFC 3461 §4.2)
    ACCEPTED = "accepted"  # accepted by a peer that does DSN: notifying is its job now
    TEMPORARY = "temporary"
    PERMANENT = "permanent"

    @property
    def done(self) -> bool:
        return self in (Kind.DELIVERED, Kind.RELAYED, Kind.ACCEPTED)


@dataclass(frozen=True)
class RcptResult:
    kind: Kind
    status: str  # RFC 3463 enhanced status code
    diagnostic: str = ""  # the reply as the peer gave it, or our own explanation
    remote_mta: str = ""
    code: int = 0  # the peer's reply code, when a reply decided this


def enhanced_status(code: int, text: str) -> str:
    """The enhanced status code in a reply, or the basic one for its class (RFC 3463 §2)."""
    match = _ENHANCED.match(text)
    if match and match.group(1) == str(code)[:1]:
        return ".".join(match.groups())
    return f"{code // 100}.0.0" if code // 100 in (2, 4, 5) else OTHER_TEMPORARY


def from_reply(
    code: int, text: str | bytes, *, remote_mta: str = "", accepted: Kind = Kind.RELAYED
) -> RcptResult:
    """Map a reply to a result: 2yz done (as `accepted`), 5yz permanent, anything else
    (4yz, a dropped connection) temporary (RFC 5321 §4.2.1)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    status = enhanced_status(code, text)
    diagnostic = f"{code} {text}".strip() if code > 0 else text
    if 200 <= code < 300:
        kind = accepted
    elif 500 <= code < 600:
        kind = Kind.PERMANENT
    else:
        kind = Kind.TEMPORARY
    return RcptResult(kind, status, diagnostic, remote_mta, code)


def temporary(status: str, diagnostic: str, remote_mta: str = "") -> RcptResult:
    return RcptResult(Kind.TEMPORARY, status, diagnostic, remote_mta)


def permanent(status: str, diagnostic: str, remote_mta: str = "") -> RcptResult:
    return RcptResult(Kind.PERMANENT, status, diagnostic, remote_mta)
