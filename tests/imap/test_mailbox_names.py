"""Mailbox names that are not valid modified UTF-7 (RFC 3501 §5.1.3), as outside testers
sent them: every command that names a mailbox answers NO, as Dovecot does, never BAD, and
LIST or LSUB with such a pattern simply lists nothing."""

from __future__ import annotations

import pytest

from tests.imap.conftest import deliver, message, status

# A bare "&", an "&" inside a name, a shift never closed, ASCII in base64.
NAMES = ["&", "a&b", "&Jjo", "&AGE-"]

COMMANDS = [
    "SELECT {}",
    "EXAMINE {}",
    "CREATE {}",
    "DELETE {}",
    "RENAME {} Elsewhere",
    "RENAME Archive {}",
    "SUBSCRIBE {}",
    "UNSUBSCRIBE {}",
    "STATUS {} (MESSAGES)",
    "APPEND {} {{5+}}\r\nHello",
    "GETQUOTAROOT {}",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("template", COMMANDS, ids=lambda t: t.split()[0])
def test_it_answers_no_to_a_name_that_is_not_modified_utf7(imap, alice, template, name):
    """RFC 3501 §5.1.3 defines the encoding; a well-formed command naming a mailbox that
    cannot exist is refused with NO (RFC 9051 §6.3), not BAD: Dovecot's
    "NO [CANNOT] Mailbox name is not valid mUTF-7"."""
    raw = imap.raw(alice)
    lines = raw.command(template.format(f'"{name}"'))
    assert status(lines) == "NO [CANNOT]", lines
    assert b"not valid mUTF-7" in lines[-1]


@pytest.mark.parametrize("command", ["COPY 1 {}", "MOVE 1 {}", "UID COPY 1 {}", "UID MOVE 1 {}"])
def test_copy_and_move_to_such_a_name_answer_no(imap, alice, command):
    """RFC 9051 §6.4.7 / RFC 6851 §3.1: the target is a mailbox name like any other."""
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    assert status(raw.command(command.format("a&b"))) == "NO [CANNOT]"
    assert status(raw.command("FETCH 1 FLAGS")) == "OK"  # still selected, message still there


@pytest.mark.parametrize(
    "command",
    ['LIST "" "a&b"', 'LIST "" &', 'LIST "" "&Jjo*"', 'LIST "a&b" *', 'LSUB "" "a&b"'],
)
def test_list_with_such_a_pattern_lists_nothing_and_says_ok(imap, alice, command):
    """RFC 9051 §6.3.9: a pattern that matches nothing gives no LIST lines and OK; one that
    is not modified UTF-7 can match no name (Dovecot answers the same)."""
    raw = imap.raw(alice)
    lines = raw.command(command)
    assert lines[-1].split()[1:2] == [b"OK"], lines
    assert len(lines) == 1


def test_list_keeps_the_valid_patterns_of_several(imap, alice):
    """RFC 5258 §3: each pattern of LIST "" (a b) matches on its own."""
    raw = imap.raw(alice)
    lines = raw.command('LIST "" ("a&b" INBOX)')
    assert lines[:-1] == [b'* LIST (\\HasNoChildren) "/" INBOX']
    assert status(lines) == "OK"


def test_many_such_names_do_not_end_the_connection(imap, alice):
    """Before, each answer was BAD and counted towards the limit of bad commands, so a
    client listing its folders with such names was disconnected (BYE) after twenty."""
    raw = imap.raw(alice)
    for _ in range(25):
        raw.command('LIST "" "a&b"')
        raw.command("SELECT &")
    assert status(raw.command("NOOP")) == "OK"


@pytest.mark.parametrize("command", ["SELECT", "EXAMINE"])
def test_a_refused_select_leaves_no_mailbox_selected(imap, alice, command):
    """RFC 9051 §6.3.2: a SELECT or EXAMINE that fails closes the mailbox selected before."""
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    lines = raw.command(f"{command} &")
    assert b"* OK [CLOSED] Previous mailbox closed" in lines
    assert status(raw.command("FETCH 1 FLAGS")) == "BAD"  # no longer in the selected state
