"""A small reader for IMAP response data, for tests: parenthesised lists, atoms, numbers,
NIL, quoted strings and literals (RFC 9051 §4), so FETCH results can be compared as data."""

from __future__ import annotations

import re

_ATOM = re.compile(rb"[^\s()\"{}\[]+")
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n")

Value = bytes | int | None | list["Value"]


def parse(data: bytes) -> list[Value]:
    """Every value in `data`, in order (the whole line is one implicit list)."""
    values, _pos = _items(data, 0, top=True)
    return values


def _items(data: bytes, pos: int, *, top: bool = False) -> tuple[list[Value], int]:
    out: list[Value] = []
    while pos < len(data):
        char = data[pos : pos + 1]
        if char in (b" ", b"\r", b"\n"):
            pos += 1
        elif char == b"(":
            inner, pos = _items(data, pos + 1)
            out.append(inner)
        elif char == b")":
            if top:
                raise ValueError("unbalanced )")
            return out, pos + 1
        elif char == b'"':
            found = _QUOTED.match(data, pos)
            assert found, data[pos : pos + 40]
            out.append(re.sub(rb"\\(.)", rb"\1", found.group(1)))
            pos = found.end()
        elif (found := _LITERAL.match(data, pos)) is not None:
            size = int(found.group(1))
            out.append(data[found.end() : found.end() + size])
            pos = found.end() + size
        else:
            found = _ATOM.match(data, pos)
            assert found, data[pos : pos + 40]
            atom = found.group()
            pos = found.end()
            if data[pos : pos + 1] == b"[":  # BODY[...]<n>: the section is part of the name
                end = data.index(b"]", pos) + 1
                while data[end : end + 1] == b"<":
                    end = data.index(b">", end) + 1
                atom += data[pos:end]
                pos = end
            out.append(None if atom == b"NIL" else int(atom) if atom.isdigit() else atom)
    if not top:
        raise ValueError("unbalanced (")
    return out, pos


def fetch_items(line: bytes) -> dict[bytes, Value]:
    """The item -> value pairs of one "* n FETCH (...)" response."""
    values = parse(line)
    assert values[0] == b"*" and values[2] == b"FETCH", line[:80]
    items = values[3]
    assert isinstance(items, list)
    return {items[i]: items[i + 1] for i in range(0, len(items), 2)}  # type: ignore[misc]
