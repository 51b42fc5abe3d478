"""Django system checks for the relay's settings (MAILHOST_RELAY_*, MAILHOST_SMARTHOST_*)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

TLS_POLICIES = ("opportunistic", "encrypt", "verify")
SMARTHOST_TLS = ("starttls", "tls")


@register()
def check_relay_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if settings.RELAY_TLS_POLICY not in TLS_POLICIES:
        problems.append(
            Error(
                f"MAILHOST_RELAY_TLS_POLICY={settings.RELAY_TLS_POLICY!r}: use one of "
                + ", ".join(TLS_POLICIES),
                id="relay.E001",
            )
        )
    if settings.RELAY_SMARTHOST_TLS not in SMARTHOST_TLS:
        problems.append(Error("MAILHOST_SMARTHOST_TLS must be starttls or tls", id="relay.E002"))
    if settings.RELAY_SMARTHOST_USER and not settings.RELAY_SMARTHOST_PASSWORD:
        problems.append(Error("MAILHOST_SMARTHOST_USER is set without a password", id="relay.E003"))
    if settings.RELAY_MAX_AGE < settings.RELAY_DELAY_WARNING:
        problems.append(
            Warning(
                "MAILHOST_RELAY_MAX_AGE is shorter than the delay warning: none will be sent",
                id="relay.W001",
            )
        )
    if settings.RELAY_PORT != 25 and not settings.RELAY_SMARTHOST:
        problems.append(
            Warning(
                f"MAILHOST_RELAY_PORT={settings.RELAY_PORT}: other servers receive on 25",
                id="relay.W002",
            )
        )
    return problems
