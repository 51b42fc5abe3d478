"""Pure helpers for e-mail addresses: splitting, normalising, plus-addressing."""

from __future__ import annotations

# RFC 5233 sub-addressing: "user+tag@example.org" reaches "user@example.org".
SUBADDRESS_SEPARATOR = "+"


def split_address(address: str) -> tuple[str, str]:
    """(local part, lower-cased domain) of `address`; ("", "") when it has no domain."""
    address = address.strip().strip("<>")
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        return "", ""
    return local, domain.lower().rstrip(".")


def normalise(address: str) -> str:
    """The address as stored: local part lower-cased too, as users expect (RFC 5321 §2.4
    lets a server treat local parts case-insensitively, and every common server does)."""
    local, domain = split_address(address)
    return f"{local.lower()}@{domain}" if domain else ""


def strip_subaddress(local_part: str) -> str | None:
    """`user` for `user+tag`, or None when there is no tag."""
    base, sep, _ = local_part.partition(SUBADDRESS_SEPARATOR)
    return base if sep and base else None
