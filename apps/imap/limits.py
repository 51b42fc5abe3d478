"""IMAP session limits, named, each with the rule it follows; settings may override them.

Overrides are read from Django settings under the same name with an `IMAP_` prefix
(e.g. `settings.IMAP_MAX_PER_IP`), so a deployment or a benchmark can widen them.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from apps.imap.reader import DEFAULT_MAX_LINE

# RFC 9051 §5.4: an autologout timer after authentication must be at least 30 minutes.
IDLE_TIMEOUT = 30 * 60.0
# Before login nothing obliges us to wait that long; Dovecot gives a minute or so too.
LOGIN_TIMEOUT = 180.0
# Writes that the client does not take (a stalled reader) end the session.
WRITE_TIMEOUT = 300.0
TLS_HANDSHAKE_TIMEOUT = 30.0
# RFC 7162 §4 asks for at least 8192; the reader's default follows Dovecot's 64 KiB.
MAX_LINE = DEFAULT_MAX_LINE
# Before authentication only LOGIN / AUTHENTICATE literals are expected.
MAX_LITERAL_UNAUTHENTICATED = 8192
# Robustness, not RFC numbers: syntax errors and failed logins a connection may make.
MAX_BAD_COMMANDS = 20
MAX_FAILED_LOGINS = 3
# Token bucket per connection: sustained commands per second, and the burst allowed.
COMMANDS_PER_SECOND = 500.0
COMMAND_BURST = 1000.0


@dataclass(frozen=True)
class Limits:
    idle_timeout: float
    login_timeout: float
    max_line: int
    max_literal: int
    commands_per_second: float
    command_burst: float
    max_connections: int
    max_per_ip: int
    max_per_user: int
    max_bad_commands: int
    max_failed_logins: int


def current() -> Limits:
    """The limits in force now: these defaults, or `settings.IMAP_<NAME>` where set."""

    def pick(name: str, default: float) -> float:
        return getattr(settings, f"IMAP_{name}", default)

    return Limits(
        idle_timeout=pick("IDLE_TIMEOUT", IDLE_TIMEOUT),
        login_timeout=pick("LOGIN_TIMEOUT", LOGIN_TIMEOUT),
        max_line=int(pick("MAX_LINE", MAX_LINE)),
        # RFC 7889 APPENDLIMIT: the largest message we accept, the same as SMTP's.
        max_literal=int(pick("MAX_LITERAL", settings.MAX_MESSAGE_SIZE)),
        commands_per_second=pick("COMMANDS_PER_SECOND", COMMANDS_PER_SECOND),
        command_burst=pick("COMMAND_BURST", COMMAND_BURST),
        # Connections per node: MAILHOST_IMAP_MAX_* in mailhost/settings.py.
        max_connections=settings.IMAP_MAX_CONNECTIONS,
        max_per_ip=settings.IMAP_MAX_PER_IP,
        max_per_user=settings.IMAP_MAX_PER_USER,
        max_bad_commands=int(pick("MAX_BAD_COMMANDS", MAX_BAD_COMMANDS)),
        max_failed_logins=int(pick("MAX_FAILED_LOGINS", MAX_FAILED_LOGINS)),
    )


class TokenBucket:
    """Paces commands: `delay()` says how long to wait before the next one may run."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def delay(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
