"""`manage.py alias add|list|remove ADDRESS [TARGET ...]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.accounts.addresses import split_address
from apps.accounts.models import Alias


class Command(BaseCommand):
    help = "Manage aliases: an address that forwards to local or remote addresses."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list")
        add = sub.add_parser("add")
        add.add_argument("address")
        add.add_argument("targets", nargs="+")
        sub.add_parser("remove").add_argument("address")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            for alias in Alias.objects.select_related("domain"):
                self.stdout.write(f"{alias.address} -> {', '.join(alias.target_list())}")
        elif action == "add":
            alias = services.create_alias(options["address"], options["targets"])
            self.stdout.write(f"added {alias.address}")
        else:
            local, domain = split_address(options["address"])
            deleted, _ = Alias.objects.filter(
                local_part=local.lower(), domain__name=domain
            ).delete()
            if not deleted:
                raise CommandError(f"no alias {options['address']}")
            self.stdout.write(f"removed {options['address']}")
