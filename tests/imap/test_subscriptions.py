"""SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7-8, RFC 3501 §6.3.6-7): the subscription list
is a list of names kept apart from the folders. CREATE subscribes nothing, DELETE
unsubscribes nothing, a name may be subscribed without a folder, and RENAME takes the
subscriptions of the names it renames along."""

from __future__ import annotations

from tests.imap.conftest import status

DEFAULTS = [b"INBOX", b'"Archive"', b'"Drafts"', b'"Junk"', b'"Sent"', b'"Trash"']


def _subscribed(raw, pattern: str = "*") -> list[bytes]:
    """Names LSUB gives for `pattern`, each with its attributes."""
    lines = raw.command(f'LSUB "" "{pattern}"')
    assert status(lines) == "OK", lines
    return [line.removeprefix(b"* LSUB ").replace(b' "/" ', b" ") for line in lines[:-1]]


def test_create_subscribes_nothing_not_even_new_parents(imap, alice):
    """RFC 3501 §6.3.3 (RFC 9051 §6.3.4): CREATE makes a mailbox; subscribing is the
    client's SUBSCRIBE (§6.3.6). "a" is created as the parent of "a/b"."""
    raw = imap.raw(alice)
    assert status(raw.command("CREATE a/b")) == "OK"
    assert _subscribed(raw, "a*") == []
    lines = raw.command('LIST (SUBSCRIBED) "" "a*"')
    assert lines[:-1] == []


def test_a_client_gets_back_exactly_the_names_it_subscribed(imap, alice):
    """RFC 9051 §6.3.7: SUBSCRIBE adds the name to the list LSUB and LIST (SUBSCRIBED)
    return: five subscribed (one of them a name no folder has) are five listed, beside
    the default folders, which are subscribed when the account is made."""
    raw = imap.raw(alice)
    for name in ("Lists", "Lists/Python", "Lists/Django", "Work", "Work/Reports"):
        raw.command(f"CREATE {name}")
    five = ("Lists/Python", "Lists/Django", "Work", "Work/Reports", "Later")
    for name in five:
        assert status(raw.command(f"SUBSCRIBE {name}")) == "OK"
    names = [line.split(b" ", 1)[1] for line in _subscribed(raw)]
    assert sorted(names) == sorted(DEFAULTS + [f'"{name}"'.encode() for name in five])
    lines = raw.command('LIST (SUBSCRIBED) "" "*"')
    assert len(lines[:-1]) == len(DEFAULTS) + 5


def test_subscribing_a_name_without_a_mailbox_is_allowed(imap, alice):
    """RFC 3501 §6.3.6: a server MAY check that the name exists; we do not (nor does
    Dovecot), so a client may subscribe to a folder it will make later."""
    raw = imap.raw(alice)
    assert status(raw.command("SUBSCRIBE Later")) == "OK"
    assert _subscribed(raw, "Later") == [b'(\\Noselect) "Later"']
    raw.command("CREATE Later")
    assert _subscribed(raw, "Later") == [b'() "Later"']


def test_deleting_a_folder_keeps_its_subscription(imap, alice):
    """RFC 3501 §6.3.6: the server 'MUST NOT unilaterally remove an existing mailbox name
    from the subscription list even if a mailbox by that name no longer exists'."""
    raw = imap.raw(alice)
    raw.command("CREATE Alerts")
    raw.command("SUBSCRIBE Alerts")
    assert status(raw.command("DELETE Alerts")) == "OK"
    lines = raw.command('LIST (SUBSCRIBED) "" Alerts')
    assert (
        lines[0] == b'* LIST (\\NonExistent \\Noselect \\HasNoChildren \\Subscribed) "/" "Alerts"'
    )
    raw.command("CREATE Alerts")
    assert _subscribed(raw, "Alerts") == [b'() "Alerts"']


def test_unsubscribe_and_subscribe_are_ok_whatever_the_state_was(imap, alice):
    """RFC 9051 §6.3.7-8: OK if the name already was subscribed, or was not."""
    raw = imap.raw(alice)
    assert status(raw.command("UNSUBSCRIBE Nowhere")) == "OK"
    assert status(raw.command("SUBSCRIBE Sent")) == "OK"
    assert status(raw.command("SUBSCRIBE Sent")) == "OK"
    assert _subscribed(raw, "Sent") == [b'() "Sent"']
    raw.command("UNSUBSCRIBE Sent")
    assert status(raw.command("UNSUBSCRIBE Sent")) == "OK"
    assert _subscribed(raw, "Sent") == []


def test_rename_takes_the_subscriptions_of_renamed_names_along(imap, alice):
    """RFC 9051 §6.3.6 renames a mailbox and its inferior names; the subscriptions of
    those names go with them (as Cyrus and James do), so a client that shows subscribed
    folders keeps showing them. Unsubscribed ones stay unsubscribed, and a subscribed
    name without a folder under the old name moves too."""
    raw = imap.raw(alice)
    for name in ("Old", "Old/Kept", "Old/Quiet"):
        raw.command(f"CREATE {name}")
    for name in ("Old", "Old/Kept", "Old/Gone", "Older"):
        raw.command(f"SUBSCRIBE {name}")
    assert status(raw.command("RENAME Old New")) == "OK"
    assert _subscribed(raw, "New*") == [
        b'() "New"',
        b'(\\Noselect) "New/Gone"',
        b'() "New/Kept"',
    ]
    assert _subscribed(raw, "Old*") == [b'(\\Noselect) "Older"']


def test_a_name_no_folder_could_have_is_not_subscribed(imap, alice):
    """As CREATE refuses them (RFC 9051 §6.3.4), an empty name or an empty level is no
    name to subscribe: NO, and nothing is listed."""
    raw = imap.raw(alice)
    assert status(raw.command('SUBSCRIBE ""')) == "NO"
    assert status(raw.command('SUBSCRIBE "a//b"')) == "NO"
    assert _subscribed(raw, "*") == [
        b"() INBOX",
        b'() "Archive"',
        b'() "Drafts"',
        b'() "Junk"',
        b'() "Sent"',
        b'() "Trash"',
    ]
