"""SMTP replies and limits, named, each citing where it comes from."""

# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets; ESMTP parameters may extend
# it (RFC 1869 §4.1.2), so MAIL and RCPT get room for SIZE, RET, ENVID, NOTIFY, ORCPT.
COMMAND_LINE_LIMIT = 512
PARAMETER_ALLOWANCE = 600
# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with CRLF (1001 with a
# transparency dot); longer DATA lines are accepted for robustness but never split.
DATA_LINE_LIMIT = 1001
# RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted.
MAX_RECIPIENTS = 100
MAX_BAD_COMMANDS = 10
# RFC 5321 §4.5.3.2: the server should wait at least 5 minutes for a command and
# 10 minutes for the end of DATA; the whole session and DATA also get an overall budget.
COMMAND_TIMEOUT = 300.0
DATA_BLOCK_TIMEOUT = 180.0
DATA_TOTAL_TIMEOUT = 1800.0
SESSION_TOTAL_TIMEOUT = 3600.0
# Seconds for a client to finish the TLS handshake on 465 (RFC 8314 §3.3) or after STARTTLS.
TLS_HANDSHAKE_TIMEOUT = 30

OK = "250 2.0.0 OK"
QUEUED = "250 2.0.0 OK: queued as {}"
BYE = "221 2.0.0 Bye"
AUTH_OK = "235 2.7.0 Authentication successful"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
# RFC 4954 §6 and RFC 3463
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_NEEDS_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_THROTTLED = "454 4.7.0 Too many failed authentications; try again later"
AUTH_ALREADY = "503 5.5.1 Already authenticated"
AUTH_UNKNOWN_MECHANISM = "504 5.5.4 Unrecognized authentication type"
AUTH_CANCELLED = "501 5.0.0 Authentication cancelled"
AUTH_BAD_BASE64 = "501 5.5.2 Cannot decode base64"
# RFC 5321 §4.2 and RFC 3463
BAD_SEQUENCE = "503 5.5.1 Bad sequence of commands"
NEED_MAIL = "503 5.5.1 Need MAIL command"
NEED_RCPT = "503 5.5.1 Need RCPT command"
NESTED_MAIL = "503 5.5.1 Nested MAIL command"
SYNTAX_MAIL = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"
SYNTAX_RCPT = "501 5.5.4 Syntax: RCPT TO:<address> [parameters]"
BAD_ADDRESS = "553 5.1.3 Malformed address"
BAD_PARAMETER = "555 5.5.4 Unsupported parameter {}"
LINE_TOO_LONG = "500 5.5.2 Line too long"
DATA_LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
TOO_MUCH_DATA = "552 5.3.4 Message size exceeds fixed maximum message size"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_BAD_COMMANDS = "421 4.7.0 Too many errors, closing connection"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TIMEOUT = "421 4.4.2 Timeout, closing connection"
SHUTTING_DOWN = "421 4.3.2 Server shutting down"
UNKNOWN_USER = "550 5.1.1 No such user here"
RELAY_DENIED = "554 5.7.1 Relay access denied"
MAILBOX_FULL = "452 4.2.2 Mailbox full"
SENDER_NOT_OWNED = "553 5.7.1 Sender address not owned by the authenticated user"
DMARC_REJECT = "550 5.7.1 Rejected by the sender domain's DMARC policy"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"
RATE_LIMITED = "450 4.7.1 Sending rate exceeded; try again later"
MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"
BAD_BDAT = "501 5.5.4 Syntax: BDAT size [LAST]"
# RFC 5321 §3.5.3: 252 when the server will not say whether an address exists.
CANNOT_VRFY = "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery"
SYNTAX_VRFY = "501 5.5.4 Syntax: VRFY <address>"
# RFC 3207 §4.2: STARTTLS once; a second would nest TLS inside TLS.
TLS_ALREADY_ACTIVE = "503 5.5.1 TLS already active"
# An unexpected failure outside a transaction (inside one: TEMPORARY_FAILURE, 451 4.3.0).
# RFC 3463 §3.6: 5.5.0 is "other or undefined protocol status".
INTERNAL_ERROR = "500 5.5.0 Command failed, try again later"
