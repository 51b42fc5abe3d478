"""SMTP TLS reporting (RFC 8460): count the TLS sessions to each policy domain's MX hosts
per day, successful or failed and why, and once a day mail each domain that asks for it
(`_smtp._tls` TXT with rua=mailto:) the aggregate report of the day before.

Only mailto: destinations are served; https: ones (RFC 8460 §3, POST) are skipped.
"""

from __future__ import annotations

import gzip
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.mailauth.dns import NotFound, Resolver, TempError
from apps.mailstore.blobs import blob_store
from apps.relay import keys, services
from apps.relay.models import STSPolicy, TLSResult

log = logging.getLogger(__name__)

STS = "sts"  # RFC 8460 §4.4: policy-type
VERSION = "TLSRPTv1"  # RFC 8460 §3
MEDIA_TYPE = "tlsrpt+gzip"  # RFC 8460 §5.3: application/tlsrpt+gzip


def record(
    domain: str,
    policy_id: str,
    result_type: str = "",
    *,
    mx_host: str = "",
    detail: str = "",
    day: date | None = None,
) -> None:
    """One more session (a success when `result_type` is empty) for the report on `day`
    (today, UTC: RFC 8460 §4.1 reports cover whole UTC days)."""
    key = {
        "domain": domain.lower(),
        "day": day or timezone.now().date(),
        "policy_type": STS,
        "policy_id": policy_id,
        "result_type": result_type,
        "mx_host": mx_host.lower(),
    }
    if TLSResult.objects.filter(**key).update(sessions=F("sessions") + 1):
        return
    try:
        with transaction.atomic():
            TLSResult.objects.create(**key, detail=detail[:200], sessions=1)
    except IntegrityError:  # another worker made the row first: count on it
        TLSResult.objects.filter(**key).update(sessions=F("sessions") + 1)


# --- the report ---------------------------------------------------------------------------


def published_rua(records: list[str]) -> list[str]:
    """The mailto: addresses of the one `v=TLSRPTv1` record (RFC 8460 §3): none when there
    are zero or several such records."""
    ours = [r for r in records if r.replace(" ", "").startswith(f"v={VERSION};")]
    if len(ours) != 1:
        return []
    fields = dict(part.strip().partition("=")[::2] for part in ours[0].split(";"))
    addresses = []
    for uri in fields.get("rua", "").split(","):
        parts = urlsplit(uri.strip())
        if parts.scheme.lower() == "mailto" and "@" in parts.path:
            addresses.append(unquote(parts.path))
    return addresses


def own_record(domain: str) -> tuple[str, str]:
    """(name, TXT value) asking peers for TLS reports about `domain` (RFC 8460 §3)."""
    rua = settings.TLSRPT_RUA or f"postmaster@{domain}"
    return f"_smtp._tls.{domain}", f"v={VERSION}; rua=mailto:{rua}"


def _day_range(day: date) -> dict[str, str]:
    start = datetime.combine(day, time(0, 0), UTC)
    end = start + timedelta(days=1) - timedelta(seconds=1)
    return {"start-datetime": _stamp(start), "end-datetime": _stamp(end)}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # RFC 8460 §4.4: RFC 3339 date-time


def _policy(domain: str, policy_type: str, policy_id: str) -> dict:
    """RFC 8460 §4.4 "policy": the policy as it was applied, when we still have it."""
    entry: dict = {"policy-type": policy_type, "policy-domain": domain}
    cached = STSPolicy.objects.filter(domain=domain, policy_id=policy_id).first()
    if cached is not None:
        entry["policy-string"] = [line for line in cached.text.splitlines() if line.strip()]
        entry["mx-host"] = list(cached.mx)
    return entry


def _policy_entry(domain: str, kind: tuple[str, str], rows: list[TLSResult]) -> dict:
    failures = [row for row in rows if row.result_type]
    return {
        "policy": _policy(domain, *kind),
        "summary": {
            "total-successful-session-count": sum(r.sessions for r in rows if not r.result_type),
            "total-failure-session-count": sum(r.sessions for r in failures),
        },
        "failure-details": [
            {
                "result-type": row.result_type,
                "receiving-mx-hostname": row.mx_host,
                "failed-session-count": row.sessions,
                "additional-information": row.detail,
            }
            for row in failures
        ],
    }


def build_report(domain: str, day: date, rows: Iterable[TLSResult], report_id: str) -> dict:
    """The aggregate report (RFC 8460 §4.4) for `domain` on `day` from its counted sessions."""
    by_policy: dict[tuple[str, str], list[TLSResult]] = defaultdict(list)
    for row in rows:
        by_policy[(row.policy_type, row.policy_id)].append(row)
    return {
        "organization-name": settings.MAILHOST_HOSTNAME,
        "date-range": _day_range(day),
        "contact-info": f"postmaster@{settings.MAILHOST_HOSTNAME}",
        "report-id": report_id,
        "policies": [_policy_entry(domain, kind, group) for kind, group in by_policy.items()],
    }


def report_message(report: dict, domain: str, day: date, to: list[str]) -> bytes:
    """The report as mail (RFC 8460 §5.3): multipart/report; report-type=tlsrpt, a line
    for people, and the JSON gzipped as application/tlsrpt+gzip."""
    submitter = settings.MAILHOST_HOSTNAME
    message = MIMEMultipart("report", report_type="tlsrpt")
    message["From"] = f"postmaster@{submitter}"
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=submitter)
    message["Subject"] = (
        f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report['report-id']}>"
    )
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    message.attach(MIMEText(f"The TLS report of {submitter} for {domain} on {day}.\n"))
    start = int(datetime.combine(day, time(0, 0), UTC).timestamp())
    end = start + 86400 - 1
    name = f"{submitter}!{domain}!{start}!{end}.json.gz"  # RFC 8460 §5.1
    payload = gzip.compress(json.dumps(report, indent=1).encode())
    attachment = MIMEApplication(payload, MEDIA_TYPE)
    attachment.add_header("Content-Disposition", "attachment", filename=name)
    message.attach(attachment)
    return message.as_bytes(policy=SMTP)


def send_reports(day: date, resolver: Resolver) -> int:
    """Mail the report of `day` to each domain that publishes a TLSRPT mailto: address;
    the counts up to that day are removed once queued, or when nobody asks for them.
    Returns the reports queued."""
    sent = 0
    domains = TLSResult.objects.filter(day__lte=day).values_list("domain", flat=True)
    for domain in sorted(set(domains)):
        rows = TLSResult.objects.filter(domain=domain, day=day)
        try:
            to = published_rua(resolver.txt(f"_smtp._tls.{domain}")) if rows.exists() else []
        except TempError:
            continue  # keep the counts: the next run may learn where they go
        except NotFound:
            to = []
        with transaction.atomic():
            if to:
                _send(domain, day, list(rows), to)
                sent += 1
            TLSResult.objects.filter(domain=domain, day__lte=day).delete()
    return sent


def _send(domain: str, day: date, rows: list[TLSResult], to: list[str]) -> None:
    report_id = f"{day:%Y%m%d}.{secrets.token_hex(6)}@{settings.MAILHOST_HOSTNAME}"
    raw = report_message(build_report(domain, day, rows, report_id), domain, day, to)
    # RFC 8460 §5.3 asks for signed reports: with our host name's keys when it is one of
    # our domains (unchanged otherwise).
    raw = keys.sign(raw, settings.MAILHOST_HOSTNAME.lower())
    services.enqueue(
        blob_key=blob_store().put(raw),
        size=len(raw),
        # RFC 8460 §5.3 asks nothing back; the null reverse-path keeps a failed report
        # from bouncing (RFC 5321 §4.5.5).
        mail_from="",
        recipients=[{"address": address, "notify": ["NEVER"]} for address in to],
    )
    log.info("relay: TLS report %s for %s to %s", report_id, domain, ", ".join(to))
