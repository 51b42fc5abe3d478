"""TRANSACTION state: STAT, LIST, UIDL, TOP, RETR, DELE, RSET and NOOP over real sockets."""

from __future__ import annotations

import poplib

import pytest

from apps.mailstore.blobs import blob_store
from apps.mailstore.models import Message
from tests.pop3.conftest import deliver, message


@pytest.fixture(params=["file", "database"])
def three(alice, request) -> list[bytes]:
    """Three messages, their bytes in blob files or in the database (every test that
    reads them runs with both)."""
    raws = [message(n) for n in (1, 2, 3)]
    for raw in raws:
        deliver(alice, raw, kept_in=request.param)
    return raws


@pytest.mark.parametrize("kind", ["stls", "pop3s"])
def test_stat_list_and_uidl_describe_the_inbox(pop3, alice, three, kind):
    client = pop3.login(alice, kind)
    sizes = [len(raw) for raw in three]
    assert client.stat() == (3, sum(sizes))
    response, lines, _ = client.list()
    assert response == f"+OK 3 messages ({sum(sizes)} octets)".encode()
    assert lines == [f"{n} {size}".encode() for n, size in enumerate(sizes, 1)]
    assert client.list(2) == f"+OK 2 {sizes[1]}".encode()
    _, uids, _ = client.uidl()
    ids = [line.split()[1] for line in uids]
    assert len(set(ids)) == 3 and all(0 < len(i) <= 70 for i in ids)  # RFC 1939 §7
    assert client.uidl(3) == b"+OK 3 " + ids[2]
    client.quit()


@pytest.mark.parametrize("kind", ["stls", "pop3s"])
def test_retr_gives_back_the_stored_bytes_exactly(pop3, alice, three, kind):
    client = pop3.login(alice, kind)
    for n, raw in enumerate(three, 1):
        response, lines, octets = client.retr(n)
        assert response == f"+OK {len(raw)} octets".encode()
        assert octets == len(raw)
        assert b"".join(line + b"\r\n" for line in lines) == raw
        assert b"." in lines and b".a line that starts with a dot" in lines
    client.quit()


def test_retr_stuffs_dots_on_the_wire(raw_client, alice):
    deliver(alice, message(1, ".dot\r\n.\r\n"))
    client = raw_client()
    client.login(alice)
    assert client.command(b"RETR 1").startswith(b"+OK")
    assert client.multiline().endswith(b"\r\n\r\n..dot\r\n..\r\n.\r\n")


def test_a_message_stored_with_bare_line_feeds_goes_out_with_crlf(pop3, alice):
    deliver(alice, b"Subject: lf\n\nline one\n.dot\n")
    client = pop3.login(alice)
    _, lines, _ = client.retr(1)
    assert lines == [b"Subject: lf", b"", b"line one", b".dot"]
    client.quit()


def test_top_sends_the_header_and_the_first_body_lines(pop3, alice, three):
    client = pop3.login(alice)
    _, lines, _ = client.top(1, 2)
    header, body = three[0].split(b"\r\n\r\n", 1)
    assert lines == [*header.split(b"\r\n"), b"", *body.split(b"\r\n")[:2]]
    _, lines, _ = client.top(1, 0)
    assert lines == [*header.split(b"\r\n"), b""]
    client.quit()


def test_dele_hides_a_message_from_the_session_and_rset_brings_it_back(pop3, alice, three):
    client = pop3.login(alice, "pop3s")
    assert client.dele(2).startswith(b"+OK")
    assert client.stat() == (2, len(three[0]) + len(three[2]))
    assert [line.split()[0] for line in client.list()[1]] == [b"1", b"3"]
    for command in (lambda: client.retr(2), lambda: client.dele(2), lambda: client.list(2)):
        with pytest.raises(poplib.error_proto, match="deleted"):
            command()
    assert client.rset().startswith(b"+OK maildrop has 3 messages")
    assert client.stat()[0] == 3
    assert client.noop() == b"+OK"
    client.quit()


@pytest.mark.parametrize("command", [b"RETR 4", b"LIST 9", b"TOP 4 1", b"DELE 99", b"UIDL 0"])
def test_a_message_number_outside_the_maildrop_is_an_error(raw_client, alice, three, command):
    client = raw_client()
    client.login(alice)
    assert client.command(command) == b"-ERR No such message\r\n"
    assert client.command(b"STAT").startswith(b"+OK 3 ")


def test_uidls_stay_the_same_across_sessions_and_are_never_reused(pop3, alice, three):
    client = pop3.login(alice)
    first = dict(line.split() for line in client.uidl()[1])
    client.dele(1)
    client.quit()
    deliver(alice, message(4))
    client = pop3.login(alice)
    second = dict(line.split() for line in client.uidl()[1])
    client.quit()
    assert [second[b"1"], second[b"2"]] == [first[b"2"], first[b"3"]]
    assert second[b"3"] not in first.values()


def test_pipelined_commands_are_answered_in_order(raw_client, alice, three):
    client = raw_client()
    login = f"USER {alice.address}\r\nPASS {alice.password}\r\n"
    client.send(login.encode() + b"STAT\r\nLIST\r\nNOOP\r\n")
    assert client.line() == b"+OK\r\n"
    assert client.line().startswith(b"+OK Logged in")
    assert client.line().startswith(b"+OK 3 ")
    assert client.line().startswith(b"+OK 3 messages")
    assert client.multiline().count(b"\r\n") == 4
    assert client.line() == b"+OK\r\n"


def test_a_message_whose_bytes_are_gone_gets_an_error_and_the_session_goes_on(raw_client, alice):
    deliver(alice, message(1))
    deliver(alice, message(2))
    client = raw_client()
    client.login(alice)
    blob_store().delete(Message.objects.get(folder__user_id=alice.id, uid=1).blob_key)
    assert client.command(b"RETR 1").startswith(b"-ERR [SYS/TEMP]")
    assert client.command(b"RETR 2").startswith(b"+OK")
    assert client.multiline().endswith(b"Bye\r\n.\r\n")
