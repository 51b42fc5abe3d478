"""The Authentication-Results header (RFC 8601), and `check_message`: SPF, DKIM and DMARC at once.

The SMTP server calls `check_message` from a worker thread (the checks block on DNS)
and prepends `AuthVerdict.headers` to the message it stores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from apps.mailauth import dkim as dkim_check
from apps.mailauth.dkim import DKIMResult
from apps.mailauth.dmarc import DMARCResult, check_dmarc
from apps.mailauth.dns import Resolver
from apps.mailauth.spf import SPFResult, check_spf

FOLD_AT = 78  # RFC 5322 §2.1.1: lines SHOULD stay within 78 characters
# RFC 2045 §5.1 token: printable US-ASCII but space and tspecials.
TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
# RFC 8601 §2.2 pvalue also takes [local-part] "@" domain-name unquoted.
ADDRESS = re.compile(r"([!#$%&'*+\-/=?^_`{|}~0-9A-Za-z.]+)?@[0-9A-Za-z.-]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class AuthVerdict:
    """What the checks found, and the header fields that record it."""

    spf: SPFResult
    dkim: list[DKIMResult]
    dmarc: DMARCResult
    headers: bytes  # Authentication-Results and Received-SPF, folded, CRLF-terminated


def _value(text: str) -> str:
    """A pvalue: bare when RFC 8601 §2.2 allows it, else a quoted-string."""
    text = CONTROL.sub(" ", text)
    if TOKEN.fullmatch(text) or ADDRESS.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    text = CONTROL.sub(" ", text)
    return "(" + re.sub(r"([()\\])", r"\\\1", text) + ")"


def _spf_resinfo(spf: SPFResult) -> list[str]:
    ptype, value = spf.smtp_property  # RFC 8601 §2.7.2
    words = [f"spf={spf.result}"]
    if value:
        words.append(f"{ptype}={_value(value)}")
    return words


def _dkim_resinfo(result: DKIMResult) -> list[str]:
    words = [f"dkim={result.result}"]
    if result.reason:
        words.append(f"reason={_value(result.reason)}")  # RFC 8601 §2.2 reasonspec
    # RFC 8601 §2.7.1 header.d/header.i, RFC 6008 header.b, RFC 8601 §2.7.1 header.a/s.
    for name, value in (
        ("header.d", result.domain),
        ("header.i", result.identity),
        ("header.s", result.selector),
        ("header.a", result.algorithm),
        ("header.b", result.header_b),
    ):
        if value:
            words.append(f"{name}={_value(value)}")
    return words


def _dmarc_resinfo(dmarc: DMARCResult) -> list[str]:
    words = [f"dmarc={dmarc.result}"]
    if dmarc.policy:
        words.append(_comment(f"p={dmarc.policy} dis={dmarc.disposition}"))
    elif dmarc.reason:
        words.append(_comment(dmarc.reason))
    if dmarc.from_domain:
        words.append(f"header.from={_value(dmarc.from_domain)}")  # RFC 7489 §11.2
    return words


def _fold(words: Sequence[str]) -> list[str]:
    """Continuation lines of `words`, wrapped between words (RFC 5322 §2.2.3)."""
    lines = ["\t" + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > FOLD_AT:
            lines.append("\t  " + word)  # indented more: still the same result
        else:
            lines[-1] += " " + word
    return lines


def authentication_results(
    authserv_id: str, spf: SPFResult, dkim: Sequence[DKIMResult], dmarc: DMARCResult
) -> str:
    """The folded Authentication-Results field, one result per line, ending in CRLF."""
    resinfos = [_spf_resinfo(spf)]
    resinfos += [_dkim_resinfo(r) for r in dkim] or [["dkim=none"]]  # RFC 8601 §2.7.1
    resinfos.append(_dmarc_resinfo(dmarc))
    lines = [f"Authentication-Results: {_value(authserv_id)};"]
    for n, words in enumerate(resinfos):
        folded = _fold(words)
        if n < len(resinfos) - 1:
            folded[-1] += ";"
        lines += folded
    return "\r\n".join(lines) + "\r\n"


def _fold_received_spf(field: str) -> str:
    """Received-SPF with one key=value pair per line (RFC 7208 §9.1), ending in CRLF."""
    return CONTROL.sub(" ", field).replace("; ", ";\r\n\t") + "\r\n"


def check_message(
    raw: bytes,
    *,
    ip: str,
    helo: str,
    mail_from: str,
    resolver: Resolver,
    authserv_id: str,
) -> AuthVerdict:
    """Run SPF, DKIM and DMARC on a received message; blocking (DNS), so not on the loop."""
    spf = check_spf(ip, mail_from, helo, resolver, receiver=authserv_id)
    dkim = dkim_check.verify(raw, resolver)
    dmarc = check_dmarc(raw, spf, dkim, resolver)
    header = authentication_results(authserv_id, spf, dkim, dmarc)
    header += _fold_received_spf(spf.received_spf)
    return AuthVerdict(spf, dkim, dmarc, header.encode("utf-8"))


def _authserv_id(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    text = re.sub(r"\([^()]*\)", " ", text)  # comments may come first (CFWS)
    words = text.split(";", 1)[0].split()
    return words[0].strip('"').lower() if words else ""


def _fields(head: bytes) -> list[bytes]:
    """The header section cut into whole fields, continuation lines included."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _claims_to_be(field: bytes, authserv_id: str) -> bool:
    name, colon, value = field.partition(b":")
    if not colon or name.strip().lower() != b"authentication-results":
        return False
    return _authserv_id(value) == authserv_id.lower()


def remove_forged_results(raw: bytes, authserv_id: str) -> bytes:
    """Drop Authentication-Results fields that claim to be ours (RFC 8601 §5).

    A sender could otherwise add "Authentication-Results: <our id>; dkim=pass" and have
    it trusted downstream. Call this before prepending `AuthVerdict.headers`.
    """
    blank_line = re.search(rb"\r?\n(?=\r?\n)", raw)  # the end of the header section
    cut = blank_line.end() if blank_line else len(raw)
    kept = [f for f in _fields(raw[:cut]) if not _claims_to_be(f, authserv_id)]
    return b"".join(kept) + raw[cut:]
