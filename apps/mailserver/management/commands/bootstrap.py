"""`manage.py bootstrap`: the first admin on a fresh install, with a printed password."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts import services
from apps.accounts.models import Domain, User
from apps.mailserver import tls


class Command(BaseCommand):
    help = "Create the certificate and a first admin (printing the password) if none exists."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--admin", default="", help="address of the first admin")

    def handle(self, *args, **options) -> None:
        if tls.ensure_certificate(
            settings.TLS_CERT_FILE, settings.TLS_KEY_FILE, settings.MAILHOST_HOSTNAME
        ):
            self.stdout.write(f"made a self-signed certificate: {settings.TLS_CERT_FILE}")
        admin = User.objects.filter(role=User.Role.SUPERADMIN).first()
        if admin is not None:
            self.stdout.write(f"admin: {admin.email} (exists; `manage.py user passwd` resets)")
            return
        address = options["admin"] or f"admin@{settings.MAILHOST_HOSTNAME}"
        domain = address.rpartition("@")[2].lower()
        Domain.objects.get_or_create(name=domain)
        password = services.generate_password()
        services.create_user(address, password, role=User.Role.SUPERADMIN)
        self.stdout.write(f"admin: {address}")
        self.stdout.write(f"password: {password}")
