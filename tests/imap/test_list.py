"""LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), LIST-EXTENDED (RFC 5258),
LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154) and CHILDREN (RFC 3348)."""

from __future__ import annotations

import pytest

from tests.imap.conftest import deliver, message, status


@pytest.fixture
def tree(imap, alice):
    raw = imap.raw(alice)
    for name in ("Work", "Work/Clients", "Work/Clients/Acme", "Lists"):
        raw.command(f"CREATE {name}")
    raw.command("UNSUBSCRIBE Work")
    raw.command("UNSUBSCRIBE Work/Clients")
    raw.command("UNSUBSCRIBE Lists")
    return raw


def _names(lines: list[bytes]) -> list[bytes]:
    return [line.rsplit(b' "/" ', 1)[1] for line in lines if line.startswith(b"* LIST ")]


def test_empty_pattern_returns_the_delimiter(tree):
    """RFC 9051 §6.3.9: LIST "" "" gives the hierarchy delimiter and root."""
    assert tree.command('LIST "" ""')[0] == b'* LIST (\\Noselect) "/" ""'


@pytest.mark.parametrize(
    "reference, pattern, expected",
    [
        (
            '""',
            "%",
            [
                b"INBOX",
                b'"Archive"',
                b'"Drafts"',
                b'"Junk"',
                b'"Lists"',
                b'"Sent"',
                b'"Trash"',
                b'"Work"',
            ],
        ),
        ('""', "Work/%", [b'"Work/Clients"']),
        ('""', "Work/*", [b'"Work/Clients"', b'"Work/Clients/Acme"']),
        ("Work/", "%", [b'"Work/Clients"']),
        ('""', "*Acme", [b'"Work/Clients/Acme"']),
        ('""', "inbox", [b"INBOX"]),
        ('""', "Nothing*", []),
    ],
)
def test_wildcards(tree, reference, pattern, expected):
    """RFC 9051 §6.3.9: "*" matches across levels, "%" within one; INBOX in any case."""
    assert _names(tree.command(f"LIST {reference} {pattern}")) == expected


def test_children_attributes(tree):
    lines = tree.command('LIST "" Work*')
    assert lines[0] == b'* LIST (\\HasChildren) "/" "Work"'
    assert lines[2] == b'* LIST (\\HasNoChildren) "/" "Work/Clients/Acme"'


def test_special_use_attributes_are_always_shown(tree):
    assert tree.command('LIST "" Sent')[0] == b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"'


def test_selection_special_use_lists_only_those(tree):
    """RFC 6154 §5.1: LIST (SPECIAL-USE) "" *."""
    names = _names(tree.command('LIST (SPECIAL-USE) "" *'))
    assert names == [b'"Archive"', b'"Drafts"', b'"Junk"', b'"Sent"', b'"Trash"']


def test_selection_subscribed_marks_subscribed(tree):
    """RFC 5258 §3.1: SUBSCRIBED selects subscribed names and implies RETURN SUBSCRIBED."""
    lines = tree.command('LIST (SUBSCRIBED) "" Work*')
    assert lines[0] == b'* LIST (\\HasNoChildren \\Subscribed) "/" "Work/Clients/Acme"'
    assert status(lines) == "OK"


def test_recursivematch_reports_childinfo(tree):
    """RFC 5258 §3.5: a parent with subscribed children gets CHILDINFO."""
    lines = tree.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" Work/%')
    assert lines[0] == b'* LIST (\\HasChildren) "/" "Work/Clients" ("CHILDINFO" ("SUBSCRIBED"))'


def test_several_patterns_at_once(tree):
    """RFC 5258 §3: LIST "" (pattern pattern)."""
    assert _names(tree.command('LIST "" (Lists Sent)')) == [b'"Lists"', b'"Sent"']


def test_return_subscribed(tree):
    lines = tree.command('LIST "" (Lists Sent) RETURN (SUBSCRIBED)')
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" "Lists"'
    assert lines[1] == b'* LIST (\\HasNoChildren \\Subscribed \\Sent) "/" "Sent"'


def test_list_status_follows_each_mailbox(imap, alice):
    """RFC 5819 §2: RETURN (STATUS (...)) sends STATUS after each selectable mailbox."""
    deliver(alice, message(1))
    raw = imap.raw(alice)
    lines = raw.command('LIST "" (INBOX Junk) RETURN (STATUS (MESSAGES UNSEEN))')
    assert lines[:4] == [
        b'* LIST (\\HasNoChildren) "/" INBOX',
        b"* STATUS INBOX (MESSAGES 1 UNSEEN 1)",
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"',
        b'* STATUS "Junk" (MESSAGES 0 UNSEEN 0)',
    ]


def test_lsub_lists_subscribed_names(tree):
    """RFC 3501 §6.3.9: LSUB; "%" shows a parent of subscribed children as \\Noselect."""
    lines = tree.command('LSUB "" Work/%')
    assert lines[0] == b'* LSUB (\\Noselect) "/" "Work/Clients"'
    lines = tree.command('LSUB "" *')
    assert b'* LSUB () "/" "Work/Clients/Acme"' in lines
    assert b'* LSUB () "/" "Lists"' not in lines


@pytest.mark.parametrize("command", ['LIST (BOGUS) "" *', 'LIST "" * RETURN (BOGUS)', "LIST"])
def test_malformed_list_is_bad(tree, command):
    assert status(tree.command(command)) == "BAD"
