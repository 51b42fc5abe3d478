"""Mailbox commands (RFC 9051 §6.3): SELECT, EXAMINE, CREATE (RFC 6154 USE), DELETE,
RENAME, SUBSCRIBE, STATUS, NAMESPACE (RFC 2342) and ENABLE (RFC 5161)."""

from __future__ import annotations

import pytest

from tests.imap.conftest import deliver, message, status, untagged


def test_select_sends_what_rfc_3501_requires(imap, alice):
    """RFC 3501 §6.3.1: FLAGS, EXISTS, RECENT, UNSEEN, PERMANENTFLAGS, UIDNEXT, UIDVALIDITY."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    raw = imap.raw(alice)
    raw.command("STORE 1 +FLAGS (x)")  # not selected: BAD, and nothing changes
    lines = raw.command("SELECT INBOX")
    text = b"\n".join(lines)
    assert b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)" in lines
    assert b"* 2 EXISTS" in lines
    assert b"* 2 RECENT" in lines  # the first session to select: both are new to it
    assert b"* OK [UNSEEN 1]" in text
    assert b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)]" in text
    assert b"* OK [UIDNEXT 3]" in text
    assert b"* OK [UIDVALIDITY " in text
    assert b"* OK [HIGHESTMODSEQ " in text  # RFC 7162 §3.1.2.1
    assert lines[-1].startswith(b"t3 OK [READ-WRITE]")


def test_select_for_imap4rev2_sends_list_and_no_recent(imap, alice):
    """RFC 9051 §6.3.2: no RECENT or UNSEEN; a LIST response with the mailbox name."""
    raw = imap.raw(alice)
    raw.command("ENABLE IMAP4rev2")
    lines = raw.command("SELECT INBOX")
    assert b'* LIST () "/" INBOX' in lines
    assert not untagged(lines, "RECENT")
    assert not any(b"[UNSEEN" in line for line in lines)


def test_examine_is_read_only(imap, alice):
    deliver(alice, message(1))
    raw = imap.raw(alice)
    lines = raw.command("EXAMINE INBOX")
    assert b"* OK [PERMANENTFLAGS ()] Flags permitted" in lines
    assert status(lines) == "OK [READ-ONLY]"
    assert status(raw.command("STORE 1 +FLAGS (\\Seen)")) == "NO [READ-ONLY]"
    assert status(raw.command("EXPUNGE")) == "NO [READ-ONLY]"


def test_selecting_another_mailbox_says_closed(imap, alice):
    """RFC 9051 §7.1 CLOSED: the previous mailbox is closed before the new one opens."""
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    lines = raw.command("SELECT Archive")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"


def test_a_failed_select_leaves_no_mailbox_selected(imap, alice):
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    assert status(raw.command("SELECT Nowhere")) == "NO [NONEXISTENT]"
    assert status(raw.command("FETCH 1:* FLAGS")) == "BAD"


def test_select_is_case_insensitive_for_inbox_only(imap, alice):
    raw = imap.raw(alice)
    assert status(raw.command("SELECT inbox")) == "OK [READ-WRITE]"
    assert status(raw.command("SELECT archive")) == "NO [NONEXISTENT]"


def test_create_makes_parents_and_refuses_duplicates(imap, alice):
    client = imap.login(alice)
    assert client.create("Projects/2026/Q1")[0] == "OK"
    names = [line.split(b' "/" ')[1] for line in client.list('""', "Projects*")[1]]
    assert names == [b'"Projects"', b'"Projects/2026"', b'"Projects/2026/Q1"']
    typ, data = client.create("Projects")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]


def test_create_inbox_is_already_exists(imap, alice):
    raw = imap.raw(alice)
    assert status(raw.command("CREATE INBOX")) == "NO [ALREADYEXISTS]"


def test_create_with_a_special_use(imap, alice):
    """RFC 6154 §3: CREATE name (USE (\\Archive))."""
    raw = imap.raw(alice)
    assert status(raw.command("CREATE Old (USE (\\Archive))")) == "OK"
    lines = raw.command('LIST "" Old')
    assert b"\\Archive" in lines[0]
    assert status(raw.command("CREATE Odd (USE (\\Weird))")) == "NO [USEATTR]"


def test_delete_removes_the_folder_and_keeps_children(imap, alice):
    """RFC 9051 §6.3.5: inferiors stay; the name shows as \\NonExistent (RFC 5258)."""
    client = imap.login(alice)
    client.create("A/B")
    assert client.delete("A")[0] == "OK"
    lines = client.list('""', "A*")[1]
    assert lines[0].startswith(b"(\\NonExistent \\Noselect \\HasChildren)")
    assert lines[1] == b'(\\HasNoChildren) "/" "A/B"'


@pytest.mark.parametrize("name, code", [("INBOX", "NO [CANNOT]"), ("Nowhere", "NO [NONEXISTENT]")])
def test_delete_refusals(imap, alice, name, code):
    raw = imap.raw(alice)
    assert status(raw.command(f"DELETE {name}")) == code


def test_deleting_the_selected_mailbox_closes_it(imap, alice):
    raw = imap.raw(alice)
    raw.command("CREATE Temp")
    raw.command("SELECT Temp")
    lines = raw.command("DELETE Temp")
    assert b"* OK [CLOSED] Deleted mailbox was selected" in lines
    assert status(raw.command("NOOP")) == "OK"


def test_rename_moves_children_along(imap, alice):
    client = imap.login(alice)
    client.create("Old/Child")
    assert client.rename("Old", "New")[0] == "OK"
    names = {line.split(b' "/" ')[1] for line in client.list()[1]}
    assert {b'"New"', b'"New/Child"'} <= names
    assert b'"Old"' not in names


def test_rename_inbox_moves_its_messages(imap, alice):
    """RFC 9051 §6.3.6: renaming INBOX moves the messages and leaves INBOX empty."""
    deliver(alice, message(1))
    client = imap.login(alice)
    assert client.rename("INBOX", "Saved")[0] == "OK"
    assert client.select("INBOX")[1] == [b"0"]
    assert client.select("Saved")[1] == [b"1"]


@pytest.mark.parametrize(
    "old, new, code",
    [("Nowhere", "X", "NO [NONEXISTENT]"), ("Archive", "Trash", "NO [ALREADYEXISTS]")],
)
def test_rename_refusals(imap, alice, old, new, code):
    raw = imap.raw(alice)
    assert status(raw.command(f"RENAME {old} {new}")) == code


def test_subscribe_and_unsubscribe_show_in_lsub(imap, alice):
    client = imap.login(alice)
    client.create("Lists")
    client.unsubscribe("Lists")
    assert b'() "/" "Lists"' not in client.lsub()[1]
    client.subscribe("Lists")
    assert b'() "/" "Lists"' in client.lsub()[1]


def test_status_counts(imap, alice):
    """RFC 9051 §6.3.11 with RFC 8438 SIZE and RFC 7162 HIGHESTMODSEQ."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    client = imap.login(alice)
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Seen \\Deleted)")
    _typ, data = client.status(
        "INBOX", "(MESSAGES UIDNEXT UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT)"
    )
    text = data[0].decode()
    size = len(message(1)) + len(message(2))
    for part in ("MESSAGES 2", "UIDNEXT 3", "UNSEEN 1", "DELETED 1", f"SIZE {size}", "RECENT 0"):
        assert part in text
    assert "HIGHESTMODSEQ " in text and "APPENDLIMIT " in text


def test_status_counts_without_sizes(imap, alice):
    """Without SIZE the counts come from an index alone (services.folder_status): the same
    answers, and no size item the client did not ask for."""
    for n in (1, 2, 3):
        deliver(alice, message(n))
    client = imap.login(alice)
    client.select("INBOX")
    client.store("1:2", "+FLAGS", "(\\Seen)")
    client.store("3", "+FLAGS", "(\\Deleted)")
    _typ, data = client.status("INBOX", "(MESSAGES UNSEEN DELETED)")
    assert data[0].decode() == "INBOX (MESSAGES 3 UNSEEN 1 DELETED 1)"
    _typ, data = client.status("INBOX", "(DELETED-STORAGE)")
    assert data[0].decode() == f"INBOX (DELETED-STORAGE {len(message(3))})"


def test_status_of_a_missing_mailbox(imap, alice):
    raw = imap.raw(alice)
    assert status(raw.command("STATUS Nowhere (MESSAGES)")) == "NO [NONEXISTENT]"


def test_namespace(imap, alice):
    """RFC 2342 §5: one personal namespace with "/" as delimiter."""
    raw = imap.raw(alice)
    assert raw.command("NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL'


@pytest.mark.parametrize(
    "ask, answer",
    [
        ("CONDSTORE", b"* ENABLED CONDSTORE"),
        ("QRESYNC CONDSTORE", b"* ENABLED QRESYNC CONDSTORE"),
        ("UTF8=ACCEPT", b"* ENABLED UTF8=ACCEPT"),
        ("IMAP4rev2", b"* ENABLED IMAP4rev2"),
        ("X-UNKNOWN", b"* ENABLED"),
    ],
)
def test_enable_lists_what_it_switched_on(imap, alice, ask, answer):
    """RFC 5161 §3.1: unknown names are ignored; each name only once."""
    raw = imap.raw(alice)
    assert raw.command(f"ENABLE {ask}")[0] == answer
    assert raw.command(f"ENABLE {ask}")[0] == b"* ENABLED"


def test_utf8_accept_names_travel_as_utf8(imap, alice):
    """RFC 6855 §3: after ENABLE UTF8=ACCEPT, mailbox names are UTF-8, not modified UTF-7."""
    raw = imap.raw(alice)
    raw.command("ENABLE UTF8=ACCEPT")
    assert status(raw.command('CREATE "Grüße"'.encode())) == "OK"
    assert raw.command('LIST "" "Gr*"')[0] == '* LIST (\\HasNoChildren) "/" "Grüße"'.encode()


def test_modified_utf7_names_without_utf8(imap, alice):
    """RFC 3501 §5.1.3: names outside ASCII in modified UTF-7 both ways."""
    raw = imap.raw(alice)
    assert status(raw.command('CREATE "Gr&APwA3w-e"')) == "OK"
    assert raw.command('LIST "" "Gr*"')[0] == b'* LIST (\\HasNoChildren) "/" "Gr&APwA3w-e"'
