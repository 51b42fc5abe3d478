"""Domains, users (one login per address), aliases and app passwords."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import check_password, make_password
from django.db import models


class Domain(models.Model):
    """A mail domain this server receives mail for."""

    name = models.CharField(max_length=253, unique=True)
    is_active = models.BooleanField(default=True)
    # Mail for unknown local parts goes here when set (an address, local or remote).
    catch_all = models.CharField(max_length=320, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.name = self.name.strip().lower().rstrip(".")
        super().save(*args, **kwargs)


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        local, _, domain_name = email.strip().rpartition("@")
        domain = Domain.objects.get(name=domain_name.lower())
        user = self.model(email=f"{local}@{domain.name}", local_part=local, domain=domain, **fields)
        user.set_password(password)
        user.save()
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        _, _, domain_name = email.rpartition("@")
        Domain.objects.get_or_create(name=domain_name.lower())
        fields.setdefault("role", User.Role.SUPERADMIN)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser):
    """A mailbox owner who logs in with their address."""

    class Role(models.TextChoices):
        SUPERADMIN = "superadmin"
        DOMAIN_ADMIN = "domain_admin"
        USER = "user"

    email = models.CharField(max_length=320, unique=True)
    local_part = models.CharField(max_length=64)
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="users")
    display_name = models.CharField(max_length=200, blank=True, default="")
    is_active = models.BooleanField(default=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.USER)
    managed_domains = models.ManyToManyField(Domain, blank=True, related_name="admins")
    # Bytes of mail the user may keep; 0 means no limit.
    quota_bytes = models.BigIntegerField(default=settings.DEFAULT_QUOTA_BYTES)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = UserManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="unique_local_part")
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_staff(self) -> bool:
        return self.role in (self.Role.SUPERADMIN, self.Role.DOMAIN_ADMIN)

    @property
    def is_superuser(self) -> bool:
        return self.role == self.Role.SUPERADMIN

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_active and self.is_superuser

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_superuser

    def can_manage(self, domain: Domain) -> bool:
        if self.role == self.Role.SUPERADMIN:
            return True
        return (
            self.role == self.Role.DOMAIN_ADMIN
            and self.managed_domains.filter(pk=domain.pk).exists()
        )


class Alias(models.Model):
    """An address that forwards to one or more other addresses, local or remote."""

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="aliases")
    local_part = models.CharField(max_length=64)
    # Target addresses, one per line.
    targets = models.TextField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain__name", "local_part"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "local_part"], name="unique_alias")
        ]

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain.name}"

    @property
    def address(self) -> str:
        return str(self)

    def target_list(self) -> list[str]:
        return [t.strip().lower() for t in self.targets.replace(",", "\n").split() if t.strip()]


class AppPassword(models.Model):
    """A separate password for one mail client, which can be revoked on its own."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField(max_length=100)
    password = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def set_password(self, raw: str) -> None:
        self.password = make_password(raw)

    def check_password(self, raw: str) -> bool:
        return check_password(raw, self.password)
