"""Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3), strict in both directions.

Clients that have not sent ENABLE UTF8=ACCEPT (RFC 6855 §3) name mailboxes this way:
printable US-ASCII stands for itself ("&" is written "&-"), anything else is UTF-16BE in a
base64 variant with "," for "/" and no padding, between "&" and "-".
"""

from __future__ import annotations

import base64
import binascii
import re

# RFC 3501 §5.1.3: printable US-ASCII (0x20-0x7e) except "&" represents itself.
_DIRECT = re.compile(r"[\x20-\x25\x27-\x7e]+")
_SHIFTED = re.compile(r"&([A-Za-z0-9+,]*)-")


def encode_mutf7(name: str) -> str:
    """Encode a mailbox name to modified UTF-7."""
    out: list[str] = []
    pos = 0
    while pos < len(name):
        direct = _DIRECT.match(name, pos)
        if direct:
            out.append(direct.group())
            pos = direct.end()
        elif name[pos] == "&":
            out.append("&-")
            pos += 1
        else:
            end = pos
            while end < len(name) and not ("\x20" <= name[end] <= "\x7e"):
                end += 1
            out.append("&" + _b64encode(name[pos:end]) + "-")
            pos = end
    return "".join(out)


def decode_mutf7(name: str | bytes) -> str:
    """Decode a modified UTF-7 mailbox name; raise ValueError if it is not well-formed."""
    text = name.decode("ascii") if isinstance(name, bytes) else name
    out: list[str] = []
    pos = 0
    previous_shift_end = -1
    while pos < len(text):
        direct = _DIRECT.match(text, pos)
        if direct:
            out.append(direct.group())
            pos = direct.end()
            continue
        shifted = _SHIFTED.match(text, pos)
        if shifted is None:
            raise ValueError("not modified UTF-7: stray '&' or a character outside 0x20-0x7e")
        if pos == previous_shift_end and shifted.group(1):
            # RFC 3501 §5.1.3: "null shifts" ("-&" while in BASE64) are not permitted.
            raise ValueError("not modified UTF-7: adjacent encoded runs")
        if shifted.group(1):
            out.append(_b64decode(shifted.group(1)))
            previous_shift_end = shifted.end()
        else:
            out.append("&")
        pos = shifted.end()
    return "".join(out)


def _b64encode(run: str) -> str:
    raw = base64.b64encode(run.encode("utf-16-be")).decode("ascii")
    return raw.rstrip("=").replace("/", ",")


def _b64decode(run: str) -> str:
    if len(run) % 4 == 1:
        raise ValueError("not modified UTF-7: truncated base64")
    padded = run.replace(",", "/") + "=" * (-len(run) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
        decoded = raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not modified UTF-7: bad base64 or UTF-16") from exc
    # RFC 3501 §5.1.3: printable US-ASCII MUST NOT be base64-encoded; the encoding must
    # also be canonical (no stray bits), so that every name has exactly one spelling.
    if any("\x20" <= char <= "\x7e" for char in decoded) or _b64encode(decoded) != run:
        raise ValueError("not modified UTF-7: non-canonical encoding")
    return decoded
