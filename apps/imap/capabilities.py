"""What this server advertises (RFC 9051 §7.2.2 CAPABILITY), by session state.

Before TLS only STARTTLS and LOGINDISABLED are offered for logging in (RFC 9051 §6.2.3,
§11.1); once authenticated, the extension list. ENABLE-able capabilities are the ones a
client may switch on with RFC 5161 ENABLE.
"""

from __future__ import annotations

# Always: both protocol revisions (RFC 9051 §7.2.2 lets one server offer both), and
# LITERAL+ (RFC 7888), which supersedes LITERAL-.
BASE = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE")
# After authentication (RFC 9051 §7.2.2: a server may list more once logged in).
EXTENSIONS = (
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "CHILDREN",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "SEARCHRES",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=REFERENCES",
    "THREAD=ORDEREDSUBJECT",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "UTF8=ACCEPT",
    "BINARY",
    "MULTIAPPEND",
    "STATUS=SIZE",
    "COMPRESS=DEFLATE",
)
# RFC 5161 §4: what ENABLE can switch on here.
ENABLEABLE = frozenset({"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"})


def advertise(
    *, tls: bool, authenticated: bool, login_allowed: bool, compressed: bool, appendlimit: int
) -> str:
    """The capability list for this moment of the session."""
    caps = list(BASE)
    if not authenticated:
        if not tls:
            caps.append("STARTTLS")
        caps.append("AUTH=PLAIN" if login_allowed else "LOGINDISABLED")
        return " ".join(caps)
    caps += EXTENSIONS
    if compressed:  # RFC 4978 §3: not offered again once active
        caps.remove("COMPRESS=DEFLATE")
    caps.append(f"APPENDLIMIT={appendlimit}")  # RFC 7889 §3.1
    return " ".join(caps)
