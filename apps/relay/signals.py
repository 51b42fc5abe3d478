"""Every new domain gets its DKIM keys (RSA and Ed25519) as it is created."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.accounts.models import Domain
from apps.relay import keys


@receiver(post_save, sender=Domain, dispatch_uid="relay.domain_keys")
def give_new_domain_keys(sender: type[Domain], instance: Domain, created: bool, **_: Any) -> None:
    if created:
        keys.ensure_keys(instance)
