"""Django system checks for configuration a mail server cannot run well with."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from apps.mailserver import tls
from apps.relay import mtasts


@register()
def check_mail_settings(app_configs, **kwargs) -> list:
    problems: list[CheckMessage] = []
    if settings.PROFILE not in ("production", "development"):
        problems.append(
            Error(
                f"MAILHOST_PROFILE={settings.PROFILE!r} is neither production nor development",
                id="mailhost.E001",
            )
        )
    if settings.MAX_MESSAGE_SIZE < 1024:
        problems.append(Error("MAILHOST_MAX_MESSAGE_SIZE is below 1 KiB", id="mailhost.E002"))
    ports = [addr for addr in settings.LISTENERS.values() if addr and addr[1]]
    if len(ports) != len(set(ports)):
        problems.append(Error("two listeners share one address", id="mailhost.E003"))
    if settings.DEBUG:
        problems.append(Warning("MAILHOST_DEBUG is on: never in production", id="mailhost.W001"))
    if settings.TLS_CERT_FILE.exists() != settings.TLS_KEY_FILE.exists():
        problems.append(
            Error("only one of MAILHOST_TLS_CERT and MAILHOST_TLS_KEY exists", id="mailhost.E004")
        )
    if settings.TLS_PROFILE not in tls.PROFILES:
        problems.append(
            Error(
                f"MAILHOST_TLS_PROFILE={settings.TLS_PROFILE!r} is neither "
                + " nor ".join(tls.PROFILES),
                id="mailhost.E010",
            )
        )
    problems += _acme_problems()
    problems += _mta_sts_problems()
    return problems


def _mta_sts_problems() -> list[CheckMessage]:
    """MAILHOST_MTA_STS_*: what we fetch from peers and what we publish ourselves."""
    problems: list[CheckMessage] = []
    if not 0 < settings.MTA_STS_FETCH_PORT < 65536 or settings.MTA_STS_FETCH_TIMEOUT <= 0:
        problems.append(
            Error(
                "MAILHOST_MTA_STS_FETCH_PORT must be a port and _FETCH_TIMEOUT above 0",
                id="mailhost.E011",
            )
        )
    if settings.MTA_STS_MODE not in mtasts.MODES:
        problems.append(
            Error(
                f"MAILHOST_MTA_STS_MODE={settings.MTA_STS_MODE!r} is none of "
                + ", ".join(mtasts.MODES),
                id="mailhost.E012",
            )
        )
    if not 0 < settings.MTA_STS_MAX_AGE <= mtasts.MAX_AGE_LIMIT:  # RFC 8461 §3.2
        problems.append(
            Error("MAILHOST_MTA_STS_MAX_AGE must be 1 to 31557600 seconds", id="mailhost.E013")
        )
    return problems


def _acme_problems() -> list[CheckMessage]:
    """MAILHOST_ACME_*: a typo must not silently leave the server without certificates."""
    problems: list[CheckMessage] = []
    if settings.ACME not in ("on", "off", "auto"):
        problems.append(
            Error(f"MAILHOST_ACME={settings.ACME!r} is none of on, off, auto", id="mailhost.E005")
        )
    # RFC 8555 §6.1: every ACME request goes over HTTPS.
    if urlsplit(settings.ACME_DIRECTORY).scheme != "https":
        problems.append(
            Error(
                f"MAILHOST_ACME_DIRECTORY={settings.ACME_DIRECTORY!r} is not an https:// URL",
                id="mailhost.E006",
            )
        )
    bundle = settings.ACME_CA_BUNDLE
    if bundle and not Path(bundle).is_file():
        problems.append(
            Error(f"MAILHOST_ACME_CA_BUNDLE={bundle!r} is not a file", id="mailhost.E007")
        )
    email = settings.ACME_EMAIL
    if email and ("@" not in email or any(c.isspace() for c in email)):
        problems.append(
            Error(f"MAILHOST_ACME_EMAIL={email!r} is not an address", id="mailhost.E008")
        )
    return problems
