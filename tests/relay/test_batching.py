"""Batches: one delivery run claims the due rows of a destination and sends them over
one connection, pipelined when the peer offers it (RFC 2920); a peer that fails part-way
leaves every message with exactly one outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from apps.mailstore.models import Message
from apps.relay import delivery
from apps.relay.models import QueuedMessage
from apps.relay.pool import Pool
from tests.mailclient import raw_message
from tests.relay.conftest import TLS_NAME
from tests.relay.helpers import queue, reload, report_parts, stored_raw
from tests.relay.sink import DROP

State = QueuedMessage.State


@pytest.fixture
def mx(zone, world, settings) -> None:
    """remote.test's MX with a certificate we trust: one connection per session, no TLS
    fallback reconnecting (which would count twice)."""
    settings.RELAY_CA_FILE = str(world.cert)
    zone.mx("remote.test", (10, TLS_NAME))


@pytest.fixture
def pool() -> Iterator[Pool]:
    connections = Pool(idle_seconds=5, max_transactions=100)
    yield connections
    connections.close_all()


def queue_many(alice, count: int, domain: str = "remote.test") -> list[QueuedMessage]:
    return [
        queue(alice, [f"r{n}@{domain}"], raw_message(alice.address, f"r{n}@{domain}", f"m{n}"))[0]
        for n in range(count)
    ]


def run_all(rows, zone, pool) -> int:
    return delivery.run(rows[0].pk, resolver=zone.resolver, pool=pool)


def subjects(sink) -> Counter:
    return Counter(m.header("Subject") for m in sink.messages())


def states(rows) -> dict[str, str]:
    return {f"m{n}": reload(row).state for n, row in enumerate(rows)}


def bounces(user) -> list[Message]:
    return list(Message.objects.filter(folder__user_id=user.id, folder__name="INBOX"))


@pytest.mark.parametrize("pipelining", [True, False])
def test_many_messages_to_one_destination_share_one_connection_pipelined_when_offered(
    personas, zone, mx, sink, pool, pipelining
):
    sink.pipelining = pipelining
    rows = queue_many(personas["alice"], 12)
    assert run_all(rows, zone, pool) == 12
    assert subjects(sink) == Counter(f"m{n}" for n in range(12))
    assert sink.connections == 1
    # RFC 2920 §3.1: MAIL, RCPT and DATA in one write, only when the server offers it.
    assert sink.pipelined == (12 if pipelining else 0)
    assert set(states(rows).values()) == {State.DELIVERED}


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_4xx_on_one_rcpt_defers_that_recipient_alone(personas, zone, mx, sink, pool, pipelining):
    sink.pipelining = pipelining
    alice = personas["alice"]
    rows = queue_many(alice, 3)
    [pair] = queue(alice, ["r8@remote.test", "r9@remote.test"])
    sink.script("r1@remote.test", ["451 4.3.0 try later"])
    sink.script("r9@remote.test", ["450 4.2.1 mailbox busy"])
    assert delivery.run(rows[0].pk, resolver=zone.resolver, pool=pool) == 4
    assert states(rows) == {"m0": "delivered", "m1": "queued", "m2": "delivered"}
    deferred = reload(rows[1])
    assert deferred.attempts == 1 and "451 4.3.0 try later" in deferred.last_error
    pair = reload(pair)
    assert pair.state == State.QUEUED
    assert [r["status"] for r in pair.recipients] == ["delivered", "queued"]
    assert subjects(sink) == Counter({"m0": 1, "m2": 1, "Hello": 1})
    assert sink.connections == 1
    assert sink.pipelined == (4 if pipelining else 0)
    assert bounces(alice) == []  # a deferral owes no DSN yet


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_5xx_on_one_message_bounces_it_and_the_batch_goes_on(
    personas, zone, mx, sink, pool, pipelining
):
    sink.pipelining = pipelining
    alice = personas["alice"]
    rows = queue_many(alice, 4)
    sink.before_data = lambda envelope: (
        "554 5.7.1 content refused" if b"Subject: m1\r\n" in envelope.content else None
    )
    assert run_all(rows, zone, pool) == 4
    assert states(rows) == {"m0": "delivered", "m1": "failed", "m2": "delivered", "m3": "delivered"}
    assert subjects(sink) == Counter({"m0": 1, "m2": 1, "m3": 1})
    [bounce] = bounces(alice)
    _, [_, block], _ = report_parts(stored_raw(bounce))
    assert (block["Action"], block["Status"]) == ("failed", "5.7.1")
    assert sink.connections == 1
    assert sink.pipelined == (4 if pipelining else 0)


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_disconnect_mid_data_defers_that_message_and_the_rest_go_on_anew(
    personas, zone, mx, sink, pool, pipelining
):
    sink.pipelining = pipelining
    alice = personas["alice"]
    rows = queue_many(alice, 4)
    sink.before_data = lambda envelope: DROP if b"Subject: m1\r\n" in envelope.content else None
    assert run_all(rows, zone, pool) == 4
    assert states(rows) == {"m0": "delivered", "m1": "queued", "m2": "delivered", "m3": "delivered"}
    assert subjects(sink) == Counter({"m0": 1, "m2": 1, "m3": 1})
    dropped = reload(rows[1])
    assert dropped.attempts == 1 and f"connection to {TLS_NAME} lost" in dropped.last_error
    assert sink.connections == 2  # the messages after the break went over a new connection
    assert bounces(alice) == []


def test_recipients_past_the_peers_limit_go_in_the_next_transaction(personas, zone, mx, sink, pool):
    sink.pipelining = True
    sink.rcpt_limit = 2
    addresses = [f"r{n}@remote.test" for n in range(5)]
    [row] = queue(personas["alice"], addresses)
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert [m.recipients for m in sink.messages()] == [addresses[:2], addresses[2:4], addresses[4:]]
    assert sink.connections == 1


def test_a_new_connection_resumes_the_last_tls_session(personas, zone, mx, sink):
    one_each = Pool(idle_seconds=5, max_transactions=1)
    rows = queue_many(personas["alice"], 3)
    for row in rows:
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=one_each) == "delivered"
    received = sink.messages()
    assert sink.connections == 3 and all(m.tls for m in received)
    # RFC 8446 §2.2: the later handshakes resume the session the first one made.
    assert [m.tls_resumed for m in received[1:]] == [True, True]


def test_a_connection_is_closed_after_its_share_of_transactions(personas, zone, mx, sink):
    """As Postfix's smtp_connection_reuse_count_limit: a long run spreads over several."""
    three_each = Pool(idle_seconds=5, max_transactions=3)
    rows = queue_many(personas["alice"], 7)
    assert run_all(rows, zone, three_each) == 7
    assert len(sink.messages()) == 7
    assert sink.connections == 3
    three_each.close_all()
