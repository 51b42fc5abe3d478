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
    # CREATE subscribes nothing (RFC 3501 §6.3.3); the default folders are subscribed.
    raw.command("SUBSCRIBE Work/Clients/Acme")
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


# -- RFC 5258 §5: the examples, on their own hierarchies --------------------------------


def _only(raw, names: tuple[str, ...], subscribed: tuple[str, ...]):
    """Leave exactly `names` (and INBOX) as mailboxes and `subscribed` as subscriptions:
    the default folders go, and so do their subscriptions (which DELETE keeps)."""
    for default in ("Archive", "Drafts", "Junk", "Sent", "Trash"):
        raw.command(f"DELETE {default}")
        raw.command(f"UNSUBSCRIBE {default}")
    raw.command("UNSUBSCRIBE INBOX")
    for name in names:
        assert status(raw.command(f'CREATE "{name}"')) == "OK"
    for name in subscribed:
        assert status(raw.command(f'SUBSCRIBE "{name}"')) == "OK"
    return raw


@pytest.fixture
def fruit(imap, alice):
    """RFC 5258 §5 examples 1-6: "Fruit/Peach" is subscribed but does not exist."""
    return _only(
        imap.raw(alice),
        (
            "Fruit",
            "Fruit/Apple",
            "Fruit/Banana",
            "Tofu",
            "Vegetable",
            "Vegetable/Broccoli",
            "Vegetable/Corn",
        ),
        ("INBOX", "Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"),
    )


def _lines(raw, command: str) -> list[bytes]:
    lines = raw.command(command)
    assert status(lines) == "OK", lines
    return lines[:-1]


def test_example_2_subscribed_lists_a_subscribed_name_that_no_longer_exists(fruit):
    """RFC 5258 §5 example 2, §3.1 and §3.4: SUBSCRIBED lists subscribed names, with
    \\NonExistent for one no mailbox has; "Fruit" is not subscribed, so not listed."""
    assert _lines(fruit, 'LIST (SUBSCRIBED) "" "*"') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"',
        b'* LIST (\\NonExistent \\Noselect \\HasNoChildren \\Subscribed) "/" "Fruit/Peach"',
        b'* LIST (\\HasChildren \\Subscribed) "/" "Vegetable"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Vegetable/Broccoli"',
    ]


def test_example_5_remote_subscribed_is_subscribed_without_remote_mailboxes(fruit):
    """RFC 5258 §5 example 5, without the remote "Bread": we have no remote mailboxes."""
    assert _lines(fruit, 'LIST (REMOTE SUBSCRIBED) "" "*"') == _lines(
        fruit, 'LIST (SUBSCRIBED) "" "*"'
    )


def test_example_6_return_subscribed_marks_only_subscribed_mailboxes(fruit):
    """RFC 5258 §5 example 6, §3.2: RETURN (SUBSCRIBED) lists the mailboxes and marks the
    subscribed ones; "Fruit/Peach" is no mailbox, so it is not listed."""
    assert _lines(fruit, 'LIST "" "*" RETURN (SUBSCRIBED)') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        b'* LIST (\\HasChildren) "/" "Fruit"',
        b'* LIST (\\HasNoChildren) "/" "Fruit/Apple"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"',
        b'* LIST (\\HasNoChildren) "/" "Tofu"',
        b'* LIST (\\HasChildren \\Subscribed) "/" "Vegetable"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Vegetable/Broccoli"',
        b'* LIST (\\HasNoChildren) "/" "Vegetable/Corn"',
    ]


@pytest.fixture
def foo(imap, alice):
    """RFC 5258 §5 example 8: "Foo/Baz" is the only subscribed mailbox."""
    return _only(imap.raw(alice), ("Foo", "Foo/Bar", "Foo/Baz", "Moo"), ("Foo/Baz",))


def test_example_8a_recursivematch_returns_an_unsubscribed_parent_with_childinfo(foo):
    """RFC 5258 §5 example 8 A, §3.5: "%" selects no subscribed name, but RECURSIVEMATCH
    returns "Foo" for its subscribed child, with CHILDINFO and without \\Subscribed."""
    assert _lines(foo, 'LIST (SUBSCRIBED) "" "*"') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Foo/Baz"'
    ]
    assert _lines(foo, 'LIST (SUBSCRIBED) "" "%"') == []
    assert _lines(foo, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        b'* LIST (\\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'
    ]


def test_example_8a1_and_8c_a_subscribed_parent_has_childinfo_while_a_child_is(foo):
    """RFC 5258 §5 example 8 A1: "Foo" subscribed too is \\Subscribed with CHILDINFO;
    example 8 C: with "Foo" and "Moo" subscribed and no child, there is no CHILDINFO."""
    foo.command("SUBSCRIBE Foo")
    assert _lines(foo, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        b'* LIST (\\HasChildren \\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'
    ]
    foo.command("UNSUBSCRIBE Foo/Baz")
    foo.command("SUBSCRIBE Moo")
    assert _lines(foo, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)') == [
        b'* LIST (\\HasChildren \\Subscribed) "/" "Foo"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Moo"',
    ]


def test_example_8a2_a_parent_that_does_not_exist_is_nonexistent(foo):
    """RFC 5258 §5 example 8 A2, §3.4: the same with "Foo" deleted (its children stay)."""
    foo.command("DELETE Foo")
    assert _lines(foo, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        b'* LIST (\\NonExistent \\Noselect \\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'
    ]


def test_example_8b_only_inbox_subscribed(foo):
    """RFC 5258 §5 example 8 B."""
    foo.command("UNSUBSCRIBE Foo/Baz")
    foo.command("SUBSCRIBE INBOX")
    assert _lines(foo, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX'
    ]


@pytest.fixture
def twos(imap, alice):
    """RFC 5258 §5 example 9's mailboxes and subscriptions ("qux2" has no mailbox)."""
    subscribed = (
        *("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222"),
        *("eps2", "eps2/mamba", "qux2/bar2"),
    )
    raw = _only(imap.raw(alice), ("foo2", "baz2", *subscribed), subscribed)
    raw.command("DELETE qux2")  # CREATE made it as the parent of qux2/bar2
    return raw


def test_example_9_childinfo_only_for_children_the_pattern_leaves_out(twos):
    """RFC 5258 §5 example 9, §3.5: "foo2" for "foo2/bar1", which "*2" does not match;
    not "baz2" or "qux2", whose subscribed children are listed themselves; "eps2" is
    subscribed and has a subscribed child."""
    assert _lines(twos, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"') == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "baz2/bar2"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "baz2/bar22"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "baz2/bar222"',
        b'* LIST (\\HasChildren \\Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\HasChildren) "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "foo2/bar2"',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "qux2/bar2"',
    ]
    assert _lines(twos, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
        b'* LIST (\\HasChildren) "/" "baz2" ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\HasChildren \\Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\HasChildren) "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))',
        b'* LIST (\\NonExistent \\Noselect \\HasChildren) "/" "qux2" ("CHILDINFO" ("SUBSCRIBED"))',
    ]


@pytest.mark.parametrize("pattern", ["%", "f%", "%o"])
def test_lsub_shows_an_unsubscribed_parent_of_a_subscribed_child_as_noselect(imap, alice, pattern):
    """RFC 3501 §6.3.9: 'if "foo/bar" is subscribed but "foo" is not, a "%" wildcard to
    LSUB must return foo, not foo/bar ... with the \\Noselect attribute', for any
    pattern that matches "foo" but not "foo/bar"; "*" returns foo/bar and not foo."""
    raw = imap.raw(alice)
    raw.command("CREATE foo/bar")
    raw.command("SUBSCRIBE foo/bar")
    lines = _lines(raw, f'LSUB "" "{pattern}"')
    assert b'* LSUB (\\Noselect) "/" "foo"' in lines
    assert not [line for line in lines if b'"foo/bar"' in line]
    lines = _lines(raw, 'LSUB "" "f*"')
    assert lines == [b'* LSUB () "/" "foo/bar"']


def test_lsub_lists_a_subscribed_name_without_a_mailbox(imap, alice):
    """RFC 3501 §6.3.9 lists subscribed names, not mailboxes (§6.3.6: they may outlive
    them); one without a mailbox cannot be selected."""
    raw = imap.raw(alice)
    assert status(raw.command("SUBSCRIBE Ghost")) == "OK"
    assert _lines(raw, 'LSUB "" Ghost') == [b'* LSUB (\\Noselect) "/" "Ghost"']
