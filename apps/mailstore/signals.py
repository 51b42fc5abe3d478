"""Every new user gets their default folders, however the user was created."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.accounts.models import User


@receiver(post_save, sender=User, dispatch_uid="mailstore-provision")
def provision_new_user(sender: type[User], instance: User, created: bool, **kwargs) -> None:
    if created:
        from apps.mailstore.services import provision

        provision(instance)
