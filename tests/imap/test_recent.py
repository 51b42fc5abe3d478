"""The \\Recent flag (RFC 3501 §2.3.2): each new message is recent to exactly one session,
the first read-write one to be told of it. SELECT and new mail report the count (RECENT,
§7.3.2), FETCH and STORE show the flag to its owner, SEARCH finds it (RECENT, NEW, OLD,
§6.4.4), STATUS counts what nobody claimed (§6.3.10), EXAMINE leaves it (§6.3.2), copies,
moves and appends are recent where they land, and an IMAP4rev2 session has none of it
(RFC 9051 deprecates it)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from django.db import connection

from tests.conftest import ROOT
from tests.imap.conftest import TIMEOUT, Raw, deliver, message, untagged
from tests.imap.sexp import fetch_items
from tests.mailclient import client_tls

RECENT = b"\\Recent"


def _recent_count(lines: list[bytes]) -> int:
    [line] = untagged(lines, "RECENT")
    return int(line.split()[1])


def _flags(raw: Raw) -> dict[int, list]:
    """UID -> FLAGS of every message, as this session sees them."""
    items = [fetch_items(line) for line in untagged(raw.command("FETCH 1:* (UID FLAGS)"), "FETCH")]
    return {item[b"UID"]: item[b"FLAGS"] for item in items}  # type: ignore[misc]


def _recent_uids(raw: Raw) -> set[int]:
    return {uid for uid, flags in _flags(raw).items() if RECENT in flags}


def _numbers(lines: list[bytes], word: str) -> list[int]:
    [line] = untagged(lines, word)
    return [int(n) for n in line.split()[2:]]


def test_select_reports_the_recent_count_and_claims_the_messages(imap, alice):
    """RFC 3501 §6.3.1 and §2.3.2: the first session to select sees them recent; "if the
    session is read-write, subsequent sessions will not see \\Recent set"."""
    for n in range(1, 4):
        deliver(alice, message(n))
    first, second = imap.raw(alice), imap.raw(alice)
    assert _recent_count(first.command("SELECT INBOX")) == 3
    assert _recent_count(second.command("SELECT INBOX")) == 0
    assert _recent_uids(first) == {1, 2, 3}
    assert _recent_uids(second) == set()


def test_fetch_shows_recent_with_other_items_too(imap, alice):
    """RFC 3501 §6.4.5: FLAGS among other items (not the flags-only path) show it too."""
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    [line] = untagged(raw.command("FETCH 1 (FLAGS ENVELOPE BODY.PEEK[HEADER])"), "FETCH")
    assert fetch_items(line)[b"FLAGS"] == [RECENT]
    [line] = untagged(raw.command("FETCH 1 (BODY[TEXT])"), "FETCH")  # sets \Seen
    assert fetch_items(line)[b"FLAGS"] == [b"\\Seen", RECENT]


def test_examine_sees_recent_but_leaves_it_for_the_next_select(imap, alice):
    """RFC 3501 §6.3.2: EXAMINE "MUST NOT cause messages to lose the \\Recent flag"; §2.3.2
    says only a read-write session takes it from those that come after."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    examiner = imap.raw(alice)
    assert _recent_count(examiner.command("EXAMINE INBOX")) == 2
    assert _recent_uids(examiner) == {1, 2}
    assert b"RECENT 2" in examiner.command("STATUS INBOX (RECENT)")[0]
    selecter = imap.raw(alice)
    assert _recent_count(selecter.command("SELECT INBOX")) == 2
    assert _recent_uids(selecter) == {1, 2}


def test_status_recent_counts_what_no_session_has_claimed(imap, alice):
    """RFC 3501 §6.3.10: "The number of messages with the \\Recent flag set"; those no
    session has been told of yet, as Dovecot counts them."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    watcher, other = imap.raw(alice), imap.raw(alice)
    assert b"(RECENT 2)" in watcher.command("STATUS INBOX (RECENT)")[0]
    other.command("SELECT INBOX")
    assert b"(RECENT 0)" in watcher.command("STATUS INBOX (RECENT)")[0]
    deliver(alice, message(3))
    assert b"(RECENT 1)" in watcher.command("STATUS INBOX (RECENT)")[0]


def test_new_mail_is_claimed_and_counted_right_after_exists(imap, alice):
    """RFC 3501 §7.3.2: RECENT comes "if the size of the mailbox changes (e.g., new
    messages)"; the new message is recent to the session that noticed it."""
    deliver(alice, message(1))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    deliver(alice, message(2))
    lines = raw.command("NOOP")
    at = lines.index(b"* 2 EXISTS")
    assert lines[at + 1] == b"* 2 RECENT"
    assert _recent_uids(raw) == {1, 2}


def test_of_two_sessions_the_first_to_notice_new_mail_gets_it(imap, alice):
    """RFC 3501 §2.3.2: "This session is the first session to have been notified about
    this message"; the other sees it arrive, not recent."""
    first, second = imap.raw(alice), imap.raw(alice)
    first.command("SELECT INBOX")
    second.command("SELECT INBOX")
    deliver(alice, message(1))
    assert _recent_count(second.command("NOOP")) == 1
    lines = first.command("NOOP")
    assert b"* 1 EXISTS" in lines and _recent_count(lines) == 0
    assert (_recent_uids(first), _recent_uids(second)) == (set(), {1})


def test_sessions_racing_for_new_mail_each_get_distinct_messages(imap, alice):
    """RFC 3501 §2.3.2 under load: four sessions poll while mail arrives; every message
    ends up recent to exactly one of them."""
    sessions = [imap.raw(alice) for _ in range(4)]
    for raw in sessions:
        raw.command("SELECT INBOX")
    stop = threading.Event()

    def poll(raw: Raw) -> None:
        while not stop.is_set():
            raw.command("NOOP")

    pollers = [threading.Thread(target=poll, args=(raw,)) for raw in sessions]
    for thread in pollers:
        thread.start()
    try:
        for n in range(1, 31):
            deliver(alice, message(n))
    finally:
        stop.set()
        for thread in pollers:
            thread.join()
    for raw in sessions:
        raw.command("NOOP")  # the last arrivals, if no poll noticed them in time
    owned = [_recent_uids(raw) for raw in sessions]
    assert sorted(uid for uids in owned for uid in uids) == list(range(1, 31))


@pytest.fixture
def second_server(imap) -> Iterator[int]:
    """Another server process on the same database (as MAILHOST_PROCESSES or a second
    node runs): the IMAPS port it listens on."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailhost.settings",
        "MAILHOST_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "tests.imap.serve_imap"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            line = ""
            while not line.startswith("port "):  # after the supervisor's own lines
                line = process.stdout.readline()
                assert line, "the second server did not start"
            yield int(line.split()[1])
        finally:
            process.stdin.close()  # it stops when its input closes
            process.wait(60)


def _login_at(port: int, persona) -> Raw:
    sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    raw = Raw(client_tls().wrap_socket(sock, server_hostname="localhost"))
    raw.line()  # greeting
    lines = raw.command(f'LOGIN "{persona.address}" "{persona.password}"')
    assert b" OK " in lines[-1], lines
    return raw


def test_sessions_in_two_server_processes_never_share_a_message(imap, alice, second_server):
    """RFC 3501 §2.3.2 across processes: the claim is the store's, so sessions of two
    server processes, selecting and polling while mail arrives, each get their own."""
    for n in range(1, 6):
        deliver(alice, message(n))
    here, there = imap.raw(alice), _login_at(second_server, alice)
    try:
        counts = [_recent_count(raw.command("SELECT INBOX")) for raw in (here, there)]
        assert sorted(counts) == [0, 5]
        stop = threading.Event()

        def poll(raw: Raw) -> None:
            while not stop.is_set():
                raw.command("NOOP")

        pollers = [threading.Thread(target=poll, args=(raw,)) for raw in (here, there)]
        for thread in pollers:
            thread.start()
        try:
            for n in range(6, 31):
                deliver(alice, message(n))
        finally:
            stop.set()
            for thread in pollers:
                thread.join()
        for raw in (here, there):
            raw.command("NOOP")  # the last arrivals, if no poll noticed them in time
        owned = [_recent_uids(raw) for raw in (here, there)]
        assert sorted(uid for uids in owned for uid in uids) == list(range(1, 31))
    finally:
        there.command("LOGOUT")
        there.close()


def test_flag_changes_from_others_show_recent_to_its_owner(imap, alice):
    """RFC 3501 §7.4.2: an unsolicited FETCH FLAGS is the message's flags as this session
    sees them, \\Recent included."""
    deliver(alice, message(1))
    owner, other = imap.raw(alice), imap.raw(alice)
    owner.command("SELECT INBOX")
    other.command("SELECT INBOX")
    other.command("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert untagged(owner.command("NOOP"), "FETCH") == [
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"
    ]


def test_store_answers_with_recent_but_never_sets_it(imap, alice):
    """RFC 3501 §6.4.6: the FETCH after STORE shows the flags, \\Recent among them for its
    owner; §2.3.2: "This flag can not be altered by the client"."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    owner = imap.raw(alice)
    owner.command("SELECT INBOX")
    [line] = untagged(owner.command("STORE 1 +FLAGS (\\Seen)"), "FETCH")
    assert fetch_items(line)[b"FLAGS"] == [b"\\Seen", RECENT]
    other = imap.raw(alice)
    other.command("SELECT INBOX")
    [line] = untagged(other.command("STORE 2 +FLAGS (\\Recent)"), "FETCH")
    assert fetch_items(line)[b"FLAGS"] == []


def test_search_recent_new_and_old(imap, alice):
    """RFC 3501 §6.4.4: RECENT is \\Recent, NEW is "(RECENT UNSEEN)", OLD is "NOT
    RECENT"; in SEARCH, UID SEARCH, ESEARCH (RFC 4731), SORT and THREAD (RFC 5256)."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    imap.raw(alice).command("SELECT INBOX")  # takes 1 and 2
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    deliver(alice, message(3))
    deliver(alice, message(4))
    raw.command("NOOP")  # takes 3 and 4
    raw.command("STORE 3 +FLAGS.SILENT (\\Seen)")
    assert _numbers(raw.command("SEARCH RECENT"), "SEARCH") == [3, 4]
    assert _numbers(raw.command("SEARCH NEW"), "SEARCH") == [4]
    assert _numbers(raw.command("SEARCH OLD"), "SEARCH") == [1, 2]
    assert _numbers(raw.command("SEARCH NOT OLD"), "SEARCH") == [3, 4]
    assert _numbers(raw.command("UID SEARCH OR NEW OLD"), "SEARCH") == [1, 2, 4]
    [line] = untagged(raw.command("SEARCH RETURN (COUNT ALL) RECENT"), "ESEARCH")
    assert line.endswith(b"COUNT 2 ALL 3:4")
    assert _numbers(raw.command("SORT (REVERSE ARRIVAL) UTF-8 RECENT"), "SORT") == [4, 3]
    [line] = untagged(raw.command("THREAD ORDEREDSUBJECT UTF-8 OLD"), "THREAD")
    assert sorted(int(n) for n in re.findall(rb"\d+", line)) == [1, 2]


def test_flags_of_a_saved_sort_result_show_recent(imap, alice):
    """RFC 5267 §3.2 with RFC 5182: "$" saved by SORT ... RETURN (SAVE) is in sort order;
    FETCH $ (FLAGS) still shows \\Recent on exactly this session's messages."""
    deliver(alice, message(1))
    imap.raw(alice).command("SELECT INBOX")  # takes 1
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    deliver(alice, message(2))
    raw.command("NOOP")  # takes 2
    raw.command("SORT RETURN (SAVE) (REVERSE ARRIVAL) UTF-8 ALL")
    items = [fetch_items(line) for line in untagged(raw.command("FETCH $ (UID FLAGS)"), "FETCH")]
    assert {item[b"UID"]: item[b"FLAGS"] for item in items} == {2: [RECENT], 1: []}


def test_copies_moves_and_appends_are_recent_where_they_land(imap, alice):
    """RFC 3501 §6.4.7: "the Recent flag SHOULD be set, in the copy"; §6.3.11 APPEND: "In
    either case, the Recent flag is also set"; RFC 6851 §3.3: MOVE as COPY, then
    expunge."""
    deliver(alice, message(1))
    deliver(alice, message(2))
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    raw.command("COPY 1 Archive")
    raw.command("MOVE 2 Archive")
    data = message(3)
    raw.command(b"APPEND Archive (\\Seen) {%d+}\r\n" % len(data) + data)
    assert b"(RECENT 3)" in raw.command("STATUS Archive (RECENT)")[0]
    other = imap.raw(alice)
    assert _recent_count(other.command("SELECT Archive")) == 3
    assert _flags(other) == {1: [RECENT], 2: [RECENT], 3: [b"\\Seen", RECENT]}


def test_an_append_into_the_selected_mailbox_is_recent_to_its_session(imap, alice):
    """RFC 3501 §6.3.11: the appended message is \\Recent; the session that has the
    mailbox selected is told of it first (with EXISTS and RECENT, §7.3.2)."""
    raw = imap.raw(alice)
    raw.command("SELECT INBOX")
    data = message(1)
    lines = raw.command(b"APPEND INBOX {%d+}\r\n" % len(data) + data)
    assert b"* 1 EXISTS" in lines and _recent_count(lines) == 1
    assert _recent_uids(raw) == {1}


def test_an_imap4rev2_session_neither_sees_nor_takes_recent(imap, alice):
    """RFC 9051 §2.3.2: \\Recent "was in use in IMAP4rev1 and is now deprecated": no
    RECENT response, no flag in FETCH, and the messages stay for an RFC 3501 session."""
    deliver(alice, message(1))
    modern = imap.raw(alice)
    modern.command("ENABLE IMAP4rev2")
    assert not untagged(modern.command("SELECT INBOX"), "RECENT")
    assert _flags(modern) == {1: []}
    deliver(alice, message(2))
    lines = modern.command("NOOP")
    assert b"* 2 EXISTS" in lines and not untagged(lines, "RECENT")
    classic = imap.raw(alice)
    assert _recent_count(classic.command("SELECT INBOX")) == 2


def test_a_qresync_select_shows_recent_in_its_changes(imap, alice):
    """RFC 7162 §3.2.5.2: the FETCH responses of SELECT (QRESYNC) carry the message's
    flags, \\Recent too when the message is new to this session (RFC 3501 §2.3.2)."""
    deliver(alice, message(1))
    earlier = imap.raw(alice)
    earlier.command("ENABLE QRESYNC")
    text = b"\n".join(earlier.command("SELECT INBOX"))
    validity = int(text.split(b"[UIDVALIDITY ")[1].split(b"]")[0])
    highest = int(text.split(b"[HIGHESTMODSEQ ")[1].split(b"]")[0])
    earlier.command("LOGOUT")
    deliver(alice, message(2))
    again = imap.raw(alice)
    again.command("ENABLE QRESYNC")
    lines = again.command(f"SELECT INBOX (QRESYNC ({validity} {highest}))")
    assert _recent_count(lines) == 1
    [line] = untagged(lines, "FETCH")
    assert fetch_items(line)[b"FLAGS"] == [RECENT]
