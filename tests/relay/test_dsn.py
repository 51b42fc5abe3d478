"""Building delivery status notifications (RFC 3464) from what the queue knows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.relay import dsn
from tests.relay.helpers import decoded, report_parts

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ORIGINAL = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=x;\r\n\tb=AAAA\r\n"
    b"From: Zo\xc3\xab <alice@example.org>\r\nTo: ghost@remote.test\r\nSubject: Hello\r\n"
    b"\r\nThe body, which RET=HDRS leaves out.\r\n"
)
FAILED = {
    "address": "ghost@remote.test",
    "orcpt": "rfc822;Ghost@Remote.test",
    "code": "5.1.1",
    "reply": "550 5.1.1 no such user",
    "remote_mta": "mx.remote.test",
}


def build(action: str = "failed", recipients=(FAILED,), **options) -> bytes:
    return dsn.build(
        action=action,
        recipients=list(recipients),
        original=ORIGINAL,
        to="alice@example.org",
        arrival=T0,
        now=T0 + timedelta(minutes=1),
        reporting_mta="mail.example.org",
        **options,
    )


def test_a_failure_report_has_the_three_parts_and_every_field():
    raw = build(envid="abc123")
    human, [per_message, block], returned = report_parts(raw)
    assert b"Auto-Submitted: auto-replied" in raw
    assert "could not be delivered" in decoded(human).decode()
    assert per_message["Reporting-MTA"] == "dns; mail.example.org"
    assert per_message["Original-Envelope-Id"] == "abc123"
    assert per_message["Arrival-Date"] == "Mon, 30 Nov 2026 12:00:00 +0000"
    assert block["Original-Recipient"] == "rfc822; Ghost@Remote.test"
    assert block["Final-Recipient"] == "rfc822; ghost@remote.test"
    assert (block["Action"], block["Status"]) == ("failed", "5.1.1")
    assert block["Remote-MTA"] == "dns; mx.remote.test"
    assert block["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert returned.get_content_type() == "message/rfc822"


def test_the_returned_message_keeps_its_exact_bytes():
    assert ORIGINAL in build(ret="FULL")


@pytest.mark.parametrize(
    ("action", "ret", "size", "whole"),
    [
        ("failed", "FULL", 10**9, True),
        ("failed", "HDRS", 10, False),
        ("failed", "", 10, True),
        ("failed", "", dsn.FULL_RETURN_LIMIT + 1, False),
        ("delayed", "FULL", 10, False),
        ("relayed", "FULL", 10, False),
    ],
)
def test_ret_decides_between_the_message_and_its_headers(action, ret, size, whole):
    assert dsn.returns_whole(action, ret, size) is whole


def test_headers_only_leave_the_body_out():
    *_, returned = report_parts(build(ret="HDRS"))
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload(decode=True)
    assert b"Subject: Hello" in text and b"The body" not in text


def test_a_delay_warning_says_until_when_it_keeps_trying():
    pending = {"address": "slow@remote.test", "code": "4.4.1", "reply": "connection refused"}
    until = T0 + timedelta(days=5)
    raw = build("delayed", [pending], retry_until=until)
    human, [_, block], _ = report_parts(raw)
    assert (block["Action"], block["Status"]) == ("delayed", "4.4.1")
    assert block["Will-Retry-Until"] == "Sat, 05 Dec 2026 12:00:00 +0000"
    assert "Diagnostic-Code" not in block  # no remote server said anything
    assert "keeps trying until Sat, 05 Dec 2026" in decoded(human).decode()
