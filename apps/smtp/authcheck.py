"""SPF, DKIM and DMARC for mail arriving on the MX listener, and what to do about them.

Runs in a worker thread (DNS blocks). Messages too large for in-memory DKIM verification
are judged on SPF alone, and say so in their Authentication-Results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from apps.mailauth import dmarc as dmarc_check
from apps.mailauth.dns import resolver_from_settings
from apps.mailauth.results import (
    authentication_results,
    check_message,
    remove_forged_results,
)
from apps.mailauth.spf import check_spf
from apps.smtp.data import Spool
from apps.smtp.headers import HEADER_SCAN_LIMIT, header_block


@dataclass
class InboundVerdict:
    header_bytes: bytes  # Authentication-Results and Received-SPF to prepend
    reject: bool  # DMARC p=reject failed and policy says refuse (RFC 7489 §6.6.3)
    summary: dict = field(default_factory=dict)  # kept with the message for spam scoring
    body: bytes | None = None  # the message with forged Authentication-Results removed


def check_inbound(
    *, ip: str, helo: str, mail_from: str | None, spool: Spool, authserv_id: str
) -> InboundVerdict:
    resolver = resolver_from_settings(settings.DNS_SERVERS)
    if spool.size <= settings.DKIM_VERIFY_MAX_BYTES:
        raw = remove_forged_results(spool.read_all(), authserv_id)
        verdict = check_message(
            raw,
            ip=ip,
            helo=helo,
            mail_from=mail_from or "",
            resolver=resolver,
            authserv_id=authserv_id,
        )
        spf, dkim, dmarc, headers, body = (
            verdict.spf,
            verdict.dkim,
            verdict.dmarc,
            verdict.headers,
            raw,
        )
    else:
        head = header_block(spool.head(HEADER_SCAN_LIMIT))
        spf = check_spf(ip, mail_from or "", helo, resolver, receiver=authserv_id)
        dkim = []
        dmarc = dmarc_check.check_dmarc(head, spf, dkim, resolver)
        headers = authentication_results(authserv_id, spf, dkim, dmarc).encode()
        headers += spf.received_spf.encode() + b"\r\n"
        body = None
    reject = dmarc.disposition == "reject" and settings.DMARC_REJECT_ACTION == "reject"
    summary = {
        "spf": spf.result,
        "dkim": [{"result": d.result, "domain": d.domain} for d in dkim],
        "dmarc": dmarc.result,
        "dmarc_disposition": dmarc.disposition,
    }
    return InboundVerdict(headers, reject, summary, body)
