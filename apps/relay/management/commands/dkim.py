"""`manage.py dkim records|rotate|remove DOMAIN [SELECTOR]`: DKIM keys of our domains."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Domain
from apps.relay import keys


class Command(BaseCommand):
    help = "Show the DKIM records to publish, rotate keys, remove retired ones."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("records", help="the TXT records to publish").add_argument("domain")
        sub.add_parser("rotate", help="new keys with new selectors").add_argument("domain")
        remove = sub.add_parser("remove", help="forget a retired key")
        remove.add_argument("domain")
        remove.add_argument("selector")

    def handle(self, *args: Any, action: str, domain: str, **options: Any) -> None:
        if not Domain.objects.filter(name=domain.lower()).exists():
            raise CommandError(f"no domain {domain}")
        try:
            if action == "rotate":
                for key in keys.rotate(domain):
                    self.stdout.write(f"new key {key.selector} ({key.algorithm})")
            elif action == "remove":
                keys.remove(domain, options["selector"])
                self.stdout.write(f"removed {options['selector']}; unpublish its record")
        except keys.KeyChangeError as exc:
            raise CommandError(str(exc)) from None
        for record in keys.dns_records(domain):
            state = "signing" if record.active else "retired, still published"
            self.stdout.write(f"; {record.selector} {record.algorithm} ({state})")
            self.stdout.write(record.zone_line())
