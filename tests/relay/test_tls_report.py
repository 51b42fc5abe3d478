"""TLS reports (RFC 8460): the day's sessions under MTA-STS policies, summed up per policy
domain as JSON, gzipped and mailed to the rua= address the domain publishes."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

from django.utils import timezone

from apps.accounts import services as accounts
from apps.relay import delivery, tlsrpt
from apps.relay.models import QueuedMessage, TLSResult
from tests.relay.helpers import parse, parts, queue, stored_raw

DOMAIN = "remote.test"
POLICY = "version: STSv1\r\nmode: testing\r\nmx: *.remote.test\r\nmax_age: 86400\r\n"


def deliver_under_testing_policy(personas, zone, pool, policy_server) -> None:
    """One delivery to mx.remote.test, whose certificate is for another name."""
    zone.mx(DOMAIN)
    zone.mta_sts(DOMAIN, "20261208")
    policy_server.serve(f"mta-sts.{DOMAIN}", POLICY)
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"


def test_the_days_report_counts_the_failed_session(personas, zone, sink, pool, policy_server):
    deliver_under_testing_policy(personas, zone, pool, policy_server)
    today = timezone.now().date()
    rows = TLSResult.objects.filter(domain=DOMAIN, day=today)
    report = tlsrpt.build_report(DOMAIN, today, rows, "r1@mx.example")
    assert report["date-range"] == {  # RFC 8460 §4.4: the whole UTC day
        "start-datetime": f"{today}T00:00:00Z",
        "end-datetime": f"{today}T23:59:59Z",
    }
    [entry] = report["policies"]
    assert entry["policy"]["policy-type"] == "sts"
    assert entry["policy"]["policy-domain"] == DOMAIN
    assert entry["policy"]["policy-string"] == POLICY.strip().split("\r\n")
    assert entry["policy"]["mx-host"] == ["*.remote.test"]
    assert entry["summary"] == {
        "total-successful-session-count": 0,
        "total-failure-session-count": 1,
    }
    [failure] = entry["failure-details"]
    assert failure["result-type"] == "certificate-host-mismatch"  # RFC 8460 §4.3.2.1
    assert failure["receiving-mx-hostname"] == "mx.remote.test"
    assert failure["failed-session-count"] == 1


def test_the_report_is_mailed_gzipped_to_the_published_rua(
    personas, zone, sink, pool, policy_server
):
    deliver_under_testing_policy(personas, zone, pool, policy_server)
    zone.add_txt(f"_smtp._tls.{DOMAIN}", "v=TLSRPTv1; rua=mailto:tls@reports.test")
    assert tlsrpt.send_reports(timezone.now().date(), zone.resolver) == 1
    queued = QueuedMessage.objects.get(domain="reports.test")
    assert queued.mail_from == ""
    message = parse(stored_raw(queued))
    assert message.get_content_type() == "multipart/report"  # RFC 8460 §5.3
    assert message.get_param("report-type") == "tlsrpt"
    assert message["TLS-Report-Domain"] == DOMAIN
    _, attachment = parts(message)
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert str(attachment.get_filename()).endswith(".json.gz")
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    report = json.loads(gzip.decompress(payload))
    assert report["policies"][0]["summary"]["total-failure-session-count"] == 1
    assert not TLSResult.objects.exists()  # reported once


def test_the_report_is_dkim_signed_when_the_host_name_is_a_domain_of_ours(
    personas, zone, sink, pool, policy_server, settings
):
    accounts.create_domain("mailhost.test")  # with its DKIM keys
    settings.MAILHOST_HOSTNAME = "mailhost.test"
    deliver_under_testing_policy(personas, zone, pool, policy_server)
    zone.add_txt(f"_smtp._tls.{DOMAIN}", "v=TLSRPTv1; rua=mailto:tls@reports.test")
    assert tlsrpt.send_reports(timezone.now().date(), zone.resolver) == 1
    message = parse(stored_raw(QueuedMessage.objects.get(domain="reports.test")))
    assert "d=mailhost.test" in str(message["DKIM-Signature"])


def test_no_report_goes_to_a_domain_without_a_tlsrpt_record(
    personas, zone, sink, pool, policy_server
):
    deliver_under_testing_policy(personas, zone, pool, policy_server)
    assert tlsrpt.send_reports(timezone.now().date(), zone.resolver) == 0
    assert not QueuedMessage.objects.filter(domain="reports.test").exists()


def test_the_daily_task_mails_the_report_of_the_day_before(db, zone, settings):
    from workers.tasks import tls_reports

    yesterday = timezone.now().date() - timedelta(days=1)
    tlsrpt.record(
        DOMAIN, "20261208", "starttls-not-supported", mx_host="mx.remote.test", day=yesterday
    )
    tlsrpt.record(DOMAIN, "20261208", "", mx_host="mx.remote.test")  # today's: not yet
    zone.add_txt(f"_smtp._tls.{DOMAIN}", "v=TLSRPTv1; rua=mailto:tls@reports.test")
    assert settings.CELERY_BEAT_SCHEDULE["tls-reports"]["task"] == "relay.tls_reports"
    assert tls_reports() == 1
    message = parse(stored_raw(QueuedMessage.objects.get(domain="reports.test")))
    payload = parts(message)[1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    report = json.loads(gzip.decompress(payload))
    assert report["date-range"]["start-datetime"] == f"{yesterday}T00:00:00Z"
    [failure] = report["policies"][0]["failure-details"]
    assert failure["result-type"] == "starttls-not-supported"
    assert list(TLSResult.objects.values_list("day", flat=True)) == [timezone.now().date()]


def test_it_reads_only_mailto_addresses_of_the_one_tlsrpt_record():
    record = "v=TLSRPTv1; rua=mailto:a@example.org,https://r.example.org/v1,mailto:b@example.org"
    assert tlsrpt.published_rua([record, "v=spf1 -all"]) == ["a@example.org", "b@example.org"]
    assert tlsrpt.published_rua([record, record]) == []  # RFC 8460 §3: exactly one
