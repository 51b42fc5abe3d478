"""`manage.py dns records DOMAIN`: every DNS record to publish for one of our domains."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Domain
from apps.relay import keys, mtasts, tlsrpt


class Command(BaseCommand):
    help = "Show the DNS records to publish for a domain: MX, DKIM, MTA-STS, TLS reporting."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("records", help="the records to publish").add_argument("domain")

    def handle(self, *args: Any, action: str, domain: str, **options: Any) -> None:
        domain = domain.lower()
        if not Domain.objects.filter(name=domain).exists():
            raise CommandError(f"no domain {domain}")
        host = settings.MAILHOST_HOSTNAME
        self.stdout.write("; mail for the domain, and the MTA-STS policy host (RFC 8461 §3.3)")
        self.stdout.write(f"{domain}. IN MX 10 {host}.")
        self.stdout.write(f"mta-sts.{domain}. IN CNAME {host}.")
        for record in keys.dns_records(domain):
            state = "signing" if record.active else "retired, still published"
            self.stdout.write(f"; DKIM {record.selector} {record.algorithm} ({state})")
            self.stdout.write(record.zone_line())
        self.stdout.write(f"; MTA-STS, mode {settings.MTA_STS_MODE}: the id follows the policy")
        self.stdout.write(_txt(*mtasts.own_record(domain)))
        self.stdout.write("; where peers send TLS reports (RFC 8460)")
        self.stdout.write(_txt(*tlsrpt.own_record(domain)))


def _txt(name: str, value: str) -> str:
    return f'{name}. IN TXT "{value}"'
