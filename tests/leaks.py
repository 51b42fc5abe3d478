"""What a reply must never hold: the name of an internal exception or a traceback.

A client may see "500 5.5.2 Line too long" or "NO [SERVERBUG]", never "(IndexError) list
index out of range": that tells an attacker which input reached which code.
"""

from __future__ import annotations

import logging
import re

# Exception class names (IndexError, UnicodeDecodeError, KeyError, Exception, ...) and
# Python's traceback header; a bare "Error:" (aiosmtpd's wording) names no exception.
EXCEPTION_NAME = re.compile(rb"Traceback|\b[A-Z]\w*(?:Error|Exception)\b|\bException\b")


def leaked(reply: bytes) -> bool:
    return EXCEPTION_NAME.search(reply) is not None


def tracebacks(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """Records that carry a traceback or are errors: a routine client never causes one."""
    return [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
