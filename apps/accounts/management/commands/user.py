"""`manage.py user add|list|remove|passwd|quota|enable|disable ADDRESS`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.accounts.addresses import normalise
from apps.accounts.models import Domain, User


class Command(BaseCommand):
    help = "Manage users (mailboxes). A password is generated and printed when not given."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--domain", default="")
        add = sub.add_parser("add")
        add.add_argument("address")
        add.add_argument("--password", default="")
        add.add_argument("--quota", type=int, default=None, help="bytes; 0 for no limit")
        add.add_argument("--role", choices=[r.value for r in User.Role], default="user")
        passwd = sub.add_parser("passwd")
        passwd.add_argument("address")
        passwd.add_argument("--password", default="")
        quota = sub.add_parser("quota")
        quota.add_argument("address")
        quota.add_argument("bytes", type=int)
        for action in ("remove", "enable", "disable"):
            sub.add_parser(action).add_argument("address")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            users = User.objects.select_related("domain")
            if options["domain"]:
                users = users.filter(domain__name=options["domain"].lower())
            for user in users:
                state = "" if user.is_active else " (disabled)"
                self.stdout.write(f"{user.email} {user.role} quota={user.quota_bytes}{state}")
            return
        if action == "add":
            self._add(options)
            return
        found = User.objects.filter(email=normalise(options["address"])).first()
        if found is None:
            raise CommandError(f"no user {options['address']}")
        getattr(self, f"_{action}")(found, options)
        self.stdout.write(f"{action}: {found.email}")

    def _add(self, options: dict) -> None:
        address = normalise(options["address"])
        if not Domain.objects.filter(name=address.rpartition("@")[2]).exists():
            raise CommandError(f"add the domain first: manage.py domain add {address}")
        password = options["password"] or services.generate_password()
        fields: dict = {"role": options["role"]}
        if options["quota"] is not None:
            fields["quota_bytes"] = options["quota"]
        services.create_user(address, password, **fields)
        self.stdout.write(f"added {address}")
        if not options["password"]:
            self.stdout.write(f"password: {password}")

    def _passwd(self, user: User, options: dict) -> None:
        password = options["password"] or services.generate_password()
        user.set_password(password)
        user.save()
        if not options["password"]:
            self.stdout.write(f"password: {password}")

    def _quota(self, user: User, options: dict) -> None:
        user.quota_bytes = options["bytes"]
        user.save()

    def _remove(self, user: User, options: dict) -> None:
        user.delete()

    def _enable(self, user: User, options: dict) -> None:
        user.is_active = True
        user.save()

    def _disable(self, user: User, options: dict) -> None:
        user.is_active = False
        user.save()
