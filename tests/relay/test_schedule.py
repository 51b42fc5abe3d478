"""Pure decisions after an attempt: retry times, expiry, NOTIFY and the delay warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.relay import results
from apps.relay.results import Kind, RcptResult
from apps.relay.schedule import Timing, notify_wanted, plan

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TIMING = Timing(retry_delays=(300, 900, 3600, 14400), max_age=5 * 86400, delay_warning=4 * 3600)
TEMP = results.temporary("4.3.0", "451 4.3.0 later", "mx.remote.test")
PERM = results.permanent("5.1.1", "550 5.1.1 no such user", "mx.remote.test")
SENT = RcptResult(Kind.RELAYED, "2.0.0", "250 ok", "mx.remote.test")


def rcpt(address: str = "a@remote.test", notify: list[str] | None = None) -> dict:
    return {"address": address, "notify": notify or [], "status": "queued"}


def after(
    outcome: dict, *, minutes: float = 0, attempts: int = 1, warned: bool = False, rcpts=None
):
    return plan(
        rcpts or [rcpt()],
        outcome,
        created_at=T0,
        attempts=attempts,
        delay_warned=warned,
        now=T0 + timedelta(minutes=minutes),
        timing=TIMING,
    )


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 300), (2, 900), (3, 3600), (4, 14400), (9, 14400)]
)
def test_retries_wait_minutes_then_hours(attempts, delay):
    assert TIMING.retry_delay(attempts) == timedelta(seconds=delay)


def test_a_temporary_failure_schedules_the_next_attempt():
    decided = after({"a@remote.test": TEMP}, attempts=2)
    assert decided.state == "queued"
    assert decided.next_attempt_at == T0 + timedelta(seconds=900)
    assert decided.last_error == "451 4.3.0 later"
    assert decided.failed == decided.delayed == []


def test_a_permanent_failure_is_final_and_owes_a_failure_notice():
    decided = after({"a@remote.test": PERM})
    assert (decided.state, decided.next_attempt_at) == ("failed", None)
    [failed] = decided.failed
    assert (failed["status"], failed["code"], failed["remote_mta"]) == (
        "failed",
        "5.1.1",
        "mx.remote.test",
    )


def test_the_last_attempt_is_never_later_than_the_expiry():
    decided = after({"a@remote.test": TEMP}, minutes=5 * 1440 - 10, attempts=30, warned=True)
    assert decided.next_attempt_at == T0 + timedelta(days=5)


def test_after_five_days_pending_recipients_fail_with_the_last_error():
    decided = after({"a@remote.test": TEMP}, minutes=5 * 1440, attempts=40, warned=True)
    assert decided.state == "failed"
    [failed] = decided.failed
    assert failed["code"] == "4.4.7"
    assert "451 4.3.0 later" in failed["reply"]


def test_a_delay_warning_is_owed_once_after_four_hours():
    assert after({"a@remote.test": TEMP}, minutes=239).delayed == []
    decided = after({"a@remote.test": TEMP}, minutes=241)
    assert [r["address"] for r in decided.delayed] == ["a@remote.test"]
    assert decided.delay_warned
    assert after({"a@remote.test": TEMP}, minutes=600, warned=True).delayed == []


@pytest.mark.parametrize(
    ("notify", "success", "failure", "delay"),
    [
        ([], False, True, True),  # RFC 3461 §4.1: the default is ours to choose
        (["NEVER"], False, False, False),
        (["SUCCESS"], True, False, False),
        (["FAILURE", "DELAY"], False, True, True),
        (["success", "delay"], True, False, True),
    ],
)
def test_notify_decides_which_notices_are_sent(notify, success, failure, delay):
    recipient = rcpt(notify=notify)
    assert notify_wanted(recipient, "SUCCESS") is success
    assert notify_wanted(recipient, "FAILURE") is failure
    assert notify_wanted(recipient, "DELAY") is delay


def test_notify_never_suppresses_the_bounce_but_the_recipient_still_fails():
    decided = after({"a@remote.test": PERM}, rcpts=[rcpt(notify=["NEVER"])])
    assert decided.state == "failed" and decided.failed == []


def test_success_is_reported_as_relayed_only_when_asked_and_the_peer_lacks_dsn():
    accepted = RcptResult(Kind.ACCEPTED, "2.0.0", "250 ok", "mx.remote.test")
    asked = [rcpt(notify=["SUCCESS"])]
    assert len(after({"a@remote.test": SENT}, rcpts=asked).relayed) == 1
    assert after({"a@remote.test": accepted}, rcpts=asked).relayed == []
    assert after({"a@remote.test": SENT}).relayed == []


def test_mixed_results_keep_only_the_pending_recipient_queued():
    recipients = [rcpt("a@remote.test"), rcpt("b@remote.test"), rcpt("c@remote.test")]
    decided = after(
        {"a@remote.test": SENT, "b@remote.test": TEMP, "c@remote.test": PERM}, rcpts=recipients
    )
    assert [r["status"] for r in decided.recipients] == ["delivered", "queued", "failed"]
    assert decided.state == "queued"
    final = plan(
        decided.recipients,
        {"b@remote.test": SENT},
        created_at=T0,
        attempts=2,
        delay_warned=False,
        now=T0 + timedelta(minutes=5),
        timing=TIMING,
    )
    assert final.state == "failed"  # every recipient done, one of them failed
    assert final.failed == []  # c's failure was reported by the first attempt
