"""The SMTP client: ESMTP parameters it sends, and what it refuses to send (SIZE, SMTPUTF8)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.relay import delivery
from apps.relay.client import Envelope, mail_options, rcpt_options, refusal, utf8_need, xtext
from apps.relay.pool import Pool
from tests.relay.helpers import queue, reload
from tests.relay.sink import Sink

ASCII = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def envelope(mail_from: str = "a@example.org", to: str = "b@remote.test", **options) -> Envelope:
    return Envelope(mail_from, [{"address": to, "notify": [], "orcpt": None}], **options)


@pytest.mark.parametrize(
    ("text", "encoded"),
    [("plain", "plain"), ("a+b=c", "a+2Bb+3Dc"), ("sp ace", "sp+20ace"), ("é", "+C3+A9")],
)
def test_xtext_escapes_what_rfc_3461_says(text, encoded):
    assert xtext(text) == encoded


def test_mail_from_carries_size_body_and_dsn_parameters_the_server_offers():
    features = {"size": "1000000", "8bitmime": "", "dsn": ""}
    data = ASCII + "é\r\n".encode()
    options = mail_options(envelope(ret="HDRS", envid="id+1"), data, features)
    assert options == [f"SIZE={len(data)}", "BODY=8BITMIME", "RET=HDRS", "ENVID=id+2B1"]
    assert mail_options(envelope(ret="HDRS"), ASCII, {}) == []


def test_rcpt_to_passes_notify_and_orcpt_on_only_to_a_dsn_server():
    recipient = {
        "address": "b@remote.test",
        "notify": ["SUCCESS", "FAILURE"],
        "orcpt": "rfc822;B@x",
    }
    assert rcpt_options(recipient, {"dsn": ""}) == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;B@x"]
    assert rcpt_options(recipient, {}) == []


@pytest.mark.parametrize(
    ("mail_from", "to", "data", "need"),
    [
        ("a@example.org", "b@remote.test", ASCII, ""),
        ("a@example.org", "josé@remote.test", ASCII, "address"),
        ("a@example.org", "b@remote.test", "Subject: héllo\r\n\r\nx".encode(), "headers"),
        ("a@example.org", "b@remote.test", b"Subject: h\xe9llo\r\n\r\nx", ""),  # latin-1 junk
        ("a@example.org", "b@remote.test", "Subject: x\r\n\r\nbodé".encode(), ""),
    ],
)
def test_smtputf8_is_needed_for_utf8_addresses_or_headers(mail_from, to, data, need):
    assert utf8_need(envelope(mail_from, to), data) == need


def test_a_message_over_the_servers_size_is_refused_before_sending():
    problem = refusal(envelope(), ASCII, {"size": "10"})
    assert problem is not None and (problem.kind, problem.status) == ("permanent", "5.3.4")
    assert refusal(envelope(), ASCII, {"size": "0"}) is None  # 0: no fixed limit (RFC 1870)


@pytest.fixture
def pool() -> Iterator[Pool]:
    connections = Pool(idle_seconds=5, max_transactions=100)
    yield connections
    connections.close_all()


@pytest.fixture
def small_server() -> Iterator[Sink]:
    server = Sink(size_limit=2000, smtputf8=False).start()
    yield server
    server.stop()


def test_a_message_too_big_for_the_peer_bounces_without_being_sent(
    personas, zone, small_server, pool, settings
):
    settings.RELAY_PORT = small_server.port
    zone.mx("remote.test")
    raw = b"From: alice@example.org\r\nSubject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"
    [row] = queue(personas["alice"], ["friend@remote.test"], raw)
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    assert reload(row).recipients[0]["code"] == "5.3.4"
    assert small_server.messages() == []


def test_an_international_address_needs_a_peer_with_smtputf8(
    personas, zone, small_server, pool, settings
):
    settings.RELAY_PORT = small_server.port
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["josé@remote.test"])
    assert row.smtputf8
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "failed"
    assert reload(row).recipients[0]["code"] == "5.6.7"
    assert small_server.messages() == []


def test_an_international_address_travels_with_smtputf8(personas, zone, sink, pool):
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["josé@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    [received] = sink.messages()
    assert received.recipients == ["josé@remote.test"]
    assert "SMTPUTF8" in received.mail_options
