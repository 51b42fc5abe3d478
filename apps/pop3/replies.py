"""POP3 responses and limits, named, each citing where it comes from.

Response codes in brackets are RFC 2449 §8 (IN-USE, LOGIN-DELAY) and RFC 3206 (SYS/TEMP,
SYS/PERM, AUTH); a client that saw RESP-CODES in CAPA may act on them.
"""

from __future__ import annotations

# RFC 2449 §4: command lines may be up to 255 octets; a SASL response line (RFC 5034 §4)
# has no such bound, so lines get room for a long AUTH PLAIN blob before they count as abuse.
LINE_LIMIT = 4096
# RFC 1939 §3: the autologout timer must be at least 10 minutes.
IDLE_TIMEOUT = 600.0
# Errors a client may make before the server hangs up (robustness, not an RFC number).
MAX_BAD_COMMANDS = 10
# RFC 2449 §6.9: the text after IMPLEMENTATION.
IMPLEMENTATION = "Mailhost"
# RFC 5034 §4: the mechanisms after SASL in CAPA.
SASL_MECHANISMS = ("PLAIN",)

# RFC 1939 §4: the greeting.
GREETING = "+OK Mailhost POP3 server ready"
OK = "+OK"
BYE = "+OK Mailhost POP3 server signing off"
BYE_EMPTY = BYE + " (maildrop empty)"
LOGGED_IN = "+OK Logged in"
# RFC 2595 §4
BEGIN_TLS = "+OK Begin TLS negotiation"
# RFC 5034 §4: the server challenge; PLAIN has an empty one.
CONTINUE = "+ "

UNKNOWN_COMMAND = "-ERR Unknown command"
BAD_SYNTAX = "-ERR Syntax error in arguments"
WRONG_STATE = "-ERR Command not valid in this state"
LINE_TOO_LONG = "-ERR Line too long"
TOO_MANY_BAD_COMMANDS = "-ERR Too many bad commands, closing connection"
NO_SUCH_MESSAGE = "-ERR No such message"
ALREADY_DELETED = "-ERR Message already deleted"
# RFC 2595 §4: STLS only once, and never after login.
ALREADY_TLS = "-ERR TLS is already active"
# RFC 3206 §4: [AUTH] says the fault is in the credentials or how they were given; the
# wording of the plaintext refusal is Dovecot's, which clients and users already know.
PLAINTEXT_DISALLOWED = (
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
)
AUTH_FAILED = "-ERR [AUTH] Authentication failed."
NEED_USER = "-ERR [AUTH] USER first"
UNKNOWN_MECHANISM = "-ERR [AUTH] Unsupported authentication mechanism"
AUTH_CANCELLED = "-ERR [AUTH] Authentication cancelled"
AUTH_BAD_BASE64 = "-ERR [AUTH] Invalid base64 data"
APOP_UNSUPPORTED = "-ERR [AUTH] APOP is not supported"
# RFC 3206 §4: [SYS/TEMP] is a passing problem; try again later.
THROTTLED = "-ERR [SYS/TEMP] Too many failed logins, try again later"
TOO_MANY_CONNECTIONS = "-ERR [SYS/TEMP] Too many connections, try again later"
SHUTTING_DOWN = "-ERR [SYS/TEMP] Server shutting down, try again later"
INTERNAL_ERROR = "-ERR [SYS/TEMP] Internal error, try again later"
STORE_UNAVAILABLE = "-ERR [SYS/TEMP] Mailbox unavailable, try again later"
MESSAGE_GONE = "-ERR [SYS/TEMP] Message was removed by another session"
DELETE_FAILED = "-ERR [SYS/TEMP] Deleted messages could not be removed; they are kept"
LOCK_LOST = "-ERR [SYS/TEMP] Lost the maildrop lock; no messages were removed"
# RFC 2449 §8.1.1: another session holds the maildrop.
IN_USE = "-ERR [IN-USE] Mailbox is locked by another POP3 session"
STLS_PIPELINED = "-ERR Commands after STLS were sent in the clear; closing connection"
