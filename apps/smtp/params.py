"""Pure parsing of MAIL FROM and RCPT TO arguments with their ESMTP parameters.

Parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET and ENVID
(RFC 3461 §4.3-4.4), NOTIFY and ORCPT (RFC 3461 §4.1-4.2), AUTH (RFC 4954 §5, ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 5321 §4.1.2 Path; kept loose on purpose (real senders are loose) but no spaces or
# angle brackets inside, and at most one "@" separating a non-empty local part.
_PATH = re.compile(r"^<(?:@[^:<>]+:)?([^<>\s]*)>(?:\s+(.*))?$")
_BARE = re.compile(r"^([^<>\s]+)(?:\s+(.*))?$")
_XTEXT = re.compile(rb"\+([0-9A-F]{2})")


class ParamError(ValueError):
    """A syntax error; the message is the SMTP reply to send."""


@dataclass
class MailFrom:
    address: str  # "" for the null reverse-path <>
    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    ret: str | None = None  # FULL or HDRS
    envid: str | None = None


@dataclass
class RcptTo:
    address: str
    notify: list[str] = field(default_factory=list)  # NEVER, or SUCCESS/FAILURE/DELAY
    orcpt: str | None = None


def decode_xtext(value: str, name: str) -> str:
    """RFC 3461 §4: "+HH" escapes an octet; every other character is printable US-ASCII
    ("!" to "~"), so anything else makes the parameter `name` invalid."""
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise ParamError(f"parameter:{name}")
    raw = _XTEXT.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("ascii"))
    return raw.decode("utf-8", errors="replace")


def _split(arg: str, keyword: str) -> tuple[str, dict[str, str]]:
    if not arg[: len(keyword)].upper() == keyword:
        raise ParamError("syntax")
    rest = arg[len(keyword) :].strip()
    match = _PATH.match(rest) or _BARE.match(rest)
    if match is None:
        raise ParamError("syntax")
    address, params_text = match.group(1), match.group(2) or ""
    params: dict[str, str] = {}
    for item in params_text.split():
        name, eq, value = item.partition("=")
        if not name.isalnum() or (eq and not value) or name.upper() in params:
            raise ParamError("syntax")
        params[name.upper()] = value if eq else ""
    return address, params


def _check_address(address: str, allow_empty: bool) -> str:
    if not address:
        if allow_empty:
            return ""
        raise ParamError("address")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 320 or "\x00" in address:
        raise ParamError("address")
    try:  # bytes that are not UTF-8 come through as surrogates (RFC 6531 §3.3: UTF-8 only)
        address.encode("utf-8")
    except UnicodeEncodeError:
        raise ParamError("address") from None
    return address


def parse_mail_from(arg: str) -> MailFrom:
    address, params = _split(arg, "FROM:")
    mail = MailFrom(_check_address(address, allow_empty=True))
    for name, value in params.items():
        if name == "SIZE":
            if not value.isdigit():
                raise ParamError("syntax")
            mail.size = int(value)
        elif name == "BODY" and value.upper() in ("7BIT", "8BITMIME"):
            mail.body = value.upper()
        elif name == "SMTPUTF8" and not value:
            mail.smtputf8 = True
        elif name == "RET" and value.upper() in ("FULL", "HDRS"):
            mail.ret = value.upper()
        elif name == "ENVID" and value:
            mail.envid = decode_xtext(value, name)[:100]
        elif name == "AUTH":
            pass  # RFC 4954 §5: we may ignore it; the authenticated user is what counts
        else:
            raise ParamError(f"parameter:{name}")
    return mail


def parse_rcpt_to(arg: str) -> RcptTo:
    address, params = _split(arg, "TO:")
    rcpt = RcptTo(_check_address(address, allow_empty=False))
    for name, value in params.items():
        if name == "NOTIFY":
            rcpt.notify = _parse_notify(value)
        elif name == "ORCPT" and ";" in value:
            rcpt.orcpt = decode_xtext(value, name)[:500]
        else:
            raise ParamError(f"parameter:{name}")
    return rcpt


def _parse_notify(value: str) -> list[str]:
    """RFC 3461 §4.1: NEVER alone, or any of SUCCESS, FAILURE, DELAY."""
    items = [v.upper() for v in value.split(",")]
    if items == ["NEVER"]:
        return items
    if not items or any(v not in ("SUCCESS", "FAILURE", "DELAY") for v in items):
        raise ParamError("syntax")
    return items
