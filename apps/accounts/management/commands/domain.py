"""`manage.py domain add|list|remove|catchall NAME`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.accounts.models import Domain


class Command(BaseCommand):
    help = "Manage mail domains."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list")
        sub.add_parser("add").add_argument("name")
        sub.add_parser("remove").add_argument("name")
        catchall = sub.add_parser("catchall", help="set (or with no address, clear) catch-all")
        catchall.add_argument("name")
        catchall.add_argument("address", nargs="?", default="")
        for action in ("enable", "disable"):
            sub.add_parser(action).add_argument("name")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            for domain in Domain.objects.all():
                state = "" if domain.is_active else " (disabled)"
                catch_all = f" catch-all -> {domain.catch_all}" if domain.catch_all else ""
                self.stdout.write(f"{domain.name}{state}{catch_all}")
            return
        name = options["name"].lower()
        if action == "add":
            services.create_domain(name)
            self.stdout.write(f"added {name}")
            return
        found = Domain.objects.filter(name=name).first()
        if found is None:
            raise CommandError(f"no domain {name}")
        if action == "remove":
            found.delete()
        elif action == "catchall":
            found.catch_all = options["address"]
            found.save()
        else:
            found.is_active = action == "enable"
            found.save()
        self.stdout.write(f"{action}: {name}")
