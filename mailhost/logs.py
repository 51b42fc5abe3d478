"""Log formatting: text a client sent never reaches the log as raw control characters.

Protocol code logs client text with %r, which escapes it; libraries do not always (aiosmtpd
logs an unknown SMTP verb with %s). The formatter escapes what is left in the message, so
a client cannot forge log lines (CR, LF) or send escape sequences to a terminal.
Tracebacks are ours and keep their lines.
"""

from __future__ import annotations

import logging
import re

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """`text` with each control character written as a Python escape (\\n, \\x1b)."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


class EscapingFormatter(logging.Formatter):
    """A logging.Formatter whose message part is escaped."""

    def format(self, record: logging.LogRecord) -> str:
        original = record.msg, record.args
        record.msg, record.args = escape(record.getMessage()), None
        try:
            return super().format(record)
        finally:
            record.msg, record.args = original
