"""SMTP TLS reporting (RFC 8460): count the TLS sessions to each policy domain's MX hosts
per day, successful or failed and why, for the daily aggregate report."""

from __future__ import annotations

from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.relay.models import TLSResult

STS = "sts"  # RFC 8460 §4.4: policy-type


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
