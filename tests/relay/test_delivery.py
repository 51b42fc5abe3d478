"""One attempt, run in the test process against the test's DNS server and receiving server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.mailstore.models import Message
from apps.relay import delivery
from apps.relay.models import QueuedMessage
from apps.relay.pool import Pool
from tests.relay.conftest import TLS_NAME
from tests.relay.helpers import attached, decoded, queue, reload, report_parts, stored_raw


@pytest.fixture
def pool():
    connections = Pool(idle_seconds=5, max_transactions=100)
    yield connections
    connections.close_all()


def test_a_message_for_a_remote_domain_goes_to_its_mx(personas, zone, sink, pool):
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    [received] = sink.messages()
    assert received.recipients == ["friend@remote.test"]
    assert received.mail_from == "alice@example.org"
    assert received.tls
    row = reload(row)
    assert row.state == QueuedMessage.State.DELIVERED and row.attempts == 1
    assert row.recipients[0]["status"] == "delivered"


def test_mail_for_our_own_domain_is_filed_without_the_network(personas, zone, sink, pool):
    bob = personas["bob"]
    [row] = queue(personas["alice"], [bob.address])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages() == []
    assert Message.objects.filter(folder__user_id=bob.id, folder__name="INBOX").count() == 1


def test_an_unknown_local_recipient_bounces_to_the_sender(personas, zone, sink, pool):
    alice = personas["alice"]
    [row] = queue(alice, ["nobody@example.org"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    [bounce] = Message.objects.filter(folder__user_id=alice.id, folder__name="INBOX")
    _, [_, block], _ = report_parts(stored_raw(bounce))
    assert block["Status"] == "5.1.1" and block["Action"] == "failed"


def test_the_next_mx_is_tried_when_the_first_does_not_answer(personas, zone, sink, pool):
    # 127.0.0.2 is loopback too, but nothing listens there on the sink's port.
    zone.add("down.remote.test. A 127.0.0.2")
    zone.mx("remote.test", (5, "down.remote.test"), (10, "mx.remote.test"))
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert len(sink.messages()) == 1
    assert reload(row).recipients[0]["remote_mta"] == "mx.remote.test"


def test_a_domain_without_mx_is_reached_at_its_own_address(personas, zone, sink, pool):
    zone.add("plain.test. A 127.0.0.1")
    [row] = queue(personas["alice"], ["friend@plain.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages()[0].recipients == ["friend@plain.test"]


def test_a_temporary_refusal_keeps_the_message_queued_for_later(personas, zone, sink, pool):
    zone.mx("remote.test")
    sink.script("friend@remote.test", ["451 4.3.0 try again later"])
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    row = reload(row)
    assert row.last_error == "451 4.3.0 try again later"
    assert row.recipients[0]["status"] == "queued"
    assert (row.next_attempt_at - row.created_at).total_seconds() >= 1
    later = row.created_at + timedelta(hours=1)
    QueuedMessage.objects.filter(pk=row.pk).update(next_attempt_at=later)
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == ""  # not due yet
    QueuedMessage.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert len(sink.messages()) == 1 and reload(row).attempts == 2


def test_a_permanent_refusal_bounces_with_the_reply(personas, zone, sink, pool):
    alice = personas["alice"]
    zone.mx("remote.test")
    sink.script("ghost@remote.test", ["550 5.1.1 no such user"])
    raw = b"From: alice@example.org\r\nTo: ghost@remote.test\r\nSubject: Hi\r\n\r\nbody\r\n"
    [row] = queue(alice, ["ghost@remote.test"], raw, ret="HDRS", envid="env-42")
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    [bounce] = Message.objects.filter(folder__user_id=alice.id, folder__name="INBOX")
    human, [per_message, block], returned = report_parts(stored_raw(bounce))
    assert per_message["Original-Envelope-Id"] == "env-42"
    assert block["Final-Recipient"] == "rfc822; ghost@remote.test"
    assert (block["Action"], block["Status"]) == ("failed", "5.1.1")
    assert block["Remote-MTA"] == "dns; mx.remote.test"
    assert block["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert "550 5.1.1 no such user" in decoded(human).decode()
    assert returned.get_content_type() == "text/rfc822-headers"  # RET=HDRS
    assert "body" not in returned.get_payload()


@pytest.mark.parametrize(
    ("records", "status"),
    [
        (["nullmx.test. MX 0 ."], "5.1.10"),  # RFC 7505
        ([], "5.1.2"),  # NXDOMAIN
        (["nomail.test. TXT hello"], "5.1.2"),  # neither MX nor address
    ],
)
def test_a_domain_that_takes_no_mail_bounces_at_once(personas, zone, sink, pool, records, status):
    alice = personas["alice"]
    domain = records[0].split(".")[0] + ".test" if records else "nowhere.test"
    for record in records:
        zone.add(record)
    [row] = queue(alice, [f"someone@{domain}"], ret="FULL")
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    assert sink.messages() == []
    [bounce] = Message.objects.filter(folder__user_id=alice.id, folder__name="INBOX")
    _, [_, block], returned = report_parts(stored_raw(bounce))
    assert block["Status"] == status
    assert returned.get_content_type() == "message/rfc822"  # RET=FULL
    assert attached(returned)["To"] == f"someone@{domain}"


def test_a_dns_failure_is_temporary(personas, zone, sink, pool):
    zone.server.servfail("broken.test")
    zone.names.add("broken.test")
    [row] = queue(personas["alice"], ["someone@broken.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert reload(row).recipients[0]["code"] == "4.4.3"


def test_recipients_at_two_domains_make_one_transaction_per_domain(personas, zone, sink, pool):
    zone.mx("one.test")
    zone.mx("two.test")
    rows = queue(personas["alice"], ["a@one.test", "b@two.test", "c@one.test", "d@two.test"])
    assert len(rows) == 2
    for row in rows:
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    got = sorted(sorted(m.recipients) for m in sink.messages())
    assert got == [["a@one.test", "c@one.test"], ["b@two.test", "d@two.test"]]


def test_one_connection_carries_successive_messages(personas, zone, sink, pool, settings, world):
    settings.RELAY_CA_FILE = str(world.cert)
    zone.mx("remote.test", (10, TLS_NAME))
    rows = [queue(personas["alice"], [f"r{i}@remote.test"])[0] for i in range(3)]
    for row in rows:
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert len(sink.messages()) == 3
    assert sink.connections == 1


def test_a_claimed_message_is_not_attempted_by_another_worker(personas, zone, sink, pool):
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["friend@remote.test"])
    claimed = delivery.claim(row.pk, row.next_attempt_at)
    assert claimed is not None and claimed.state == "sending"
    assert delivery.claim(row.pk, row.next_attempt_at) is None
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == ""
    assert sink.messages() == []


def test_after_four_hours_the_sender_hears_once_that_the_mail_is_delayed(
    personas, zone, sink, pool
):
    alice = personas["alice"]
    zone.mx("remote.test")
    sink.script("slow@remote.test", ["451 4.4.5 busy"] * 3)
    [row] = queue(alice, ["slow@remote.test"])
    QueuedMessage.objects.filter(pk=row.pk).update(created_at=row.created_at - timedelta(hours=5))
    for _ in range(2):
        QueuedMessage.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    [warning] = Message.objects.filter(folder__user_id=alice.id, folder__name="INBOX")
    assert warning.subject == "Delayed Mail (still being retried)"
    _, [_, block], returned = report_parts(stored_raw(warning))
    assert (block["Action"], block["Status"]) == ("delayed", "4.4.5")
    assert block["Will-Retry-Until"]
    assert returned.get_content_type() == "text/rfc822-headers"


def test_after_five_days_the_sender_gets_the_bounce(personas, zone, sink, pool):
    alice = personas["alice"]
    zone.mx("remote.test")
    sink.script("slow@remote.test", ["451 4.4.5 busy"])
    [row] = queue(alice, ["slow@remote.test"])
    QueuedMessage.objects.filter(pk=row.pk).update(
        created_at=row.created_at - timedelta(days=5), delay_warned=True
    )
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    [bounce] = Message.objects.filter(folder__user_id=alice.id, folder__name="INBOX")
    _, [_, block], _ = report_parts(stored_raw(bounce))
    assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
    assert "451 4.4.5 busy" in block["Diagnostic-Code"]


def test_no_notice_is_ever_sent_about_a_message_with_the_null_sender(personas, zone, sink, pool):
    zone.mx("remote.test")
    sink.script("ghost@remote.test", ["550 5.1.1 no such user"])
    [row] = queue(None, ["ghost@remote.test"], mail_from="")
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    assert not Message.objects.exists()
    assert QueuedMessage.objects.count() == 1  # and nothing was queued to anyone


def test_a_bounce_for_a_remote_sender_is_queued_with_the_null_sender(personas, zone, sink, pool):
    zone.mx("remote.test")
    sink.script("ghost@remote.test", ["550 5.1.1 no such user"])
    [row] = queue(None, ["ghost@remote.test"], mail_from="someone@far.test")
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    bounce = QueuedMessage.objects.exclude(pk=row.pk).get()
    assert (bounce.mail_from, bounce.domain) == ("", "far.test")
    assert bounce.recipients[0]["address"] == "someone@far.test"


def test_an_alias_to_a_remote_address_is_queued_on_from_our_domain(personas, zone, sink, pool):
    from apps.accounts import services as accounts

    accounts.create_alias("team@example.org", ["bob@example.org", "partner@remote.test"])
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["team@example.org"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert Message.objects.filter(folder__user_id=personas["bob"].id).count() == 1
    onward = QueuedMessage.objects.get(domain="remote.test")
    assert delivery.attempt(onward.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages()[0].recipients == ["partner@remote.test"]


@pytest.fixture
def unwelcoming(sink):
    """A server at 127.0.0.2, on the sink's port, that greets with 554 and hangs up."""
    import socketserver
    import threading

    class Refuse(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"554 5.3.2 not accepting mail\r\n")

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    server = Server(("127.0.0.2", sink.port), Refuse)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_server_refusing_at_the_greeting_is_passed_over_for_the_next(
    personas, zone, sink, pool, unwelcoming
):
    zone.add("grumpy.remote.test. A 127.0.0.2")
    zone.mx("remote.test", (5, "grumpy.remote.test"), (10, "mx.remote.test"))
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert reload(row).recipients[0]["remote_mta"] == "mx.remote.test"


def test_when_every_server_refuses_at_the_greeting_the_last_reply_counts(
    personas, zone, sink, pool, unwelcoming
):
    zone.add("grumpy.remote.test. A 127.0.0.2")
    zone.mx("remote.test", (5, "grumpy.remote.test"))
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    assert reload(row).recipients[0]["reply"] == "554 5.3.2 not accepting mail"
