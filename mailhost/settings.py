"""Django settings for Mailhost, read from the environment (see README "Configuration").

With no environment at all this is the embedded default: SQLite, blobs and the Celery
broker under the data directory, listeners on loopback. `DATABASE_URL` and `REDIS_URL`
switch to PostgreSQL and Redis for a scaled-out install.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from mailhost.env import env_address, env_bool, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("MAILHOST_DATA_DIR", BASE_DIR / "var")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The configured secret, else one generated once and kept in the data directory."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("MAILHOST_DEBUG", False)
MAILHOST_HOSTNAME = env_str("MAILHOST_HOSTNAME") or socket.getfqdn()
ALLOWED_HOSTS = env_list("MAILHOST_ALLOWED_HOSTS", ["localhost", "127.0.0.1", MAILHOST_HOSTNAME])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "apps.accounts",
    "apps.mailstore",
    "apps.mailserver",
    "apps.smtp",
    "apps.imap",
    "apps.pop3",
    "apps.relay",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mailhost.urls"
ASGI_APPLICATION = "mailhost.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    """SQLite in the data directory unless DATABASE_URL names another database."""
    url = env_str("DATABASE_URL")
    if not url:
        return {
            "ENGINE": "mailhost.sqlite",
            "NAME": DATA_DIR / "mailhost.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers queue (on the flock
                # of mailhost/sqlite, then the busy timeout) instead of failing with
                # "database is locked" mid-transaction.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                # WAL lets readers (IMAP sessions) run while a delivery writes; synchronous=FULL
                # fsyncs the WAL at every commit, so an acknowledged delivery survives power loss.
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                ),
            },
            "TEST": {"NAME": DATA_DIR / "test.sqlite3"},
        }
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    if config["ENGINE"] == "django.db.backends.postgresql":
        server_side_binding = env_bool("DATABASE_SERVER_SIDE_BINDING", True)
        config["OPTIONS"] = {
            "pool": {"min_size": 1, "max_size": env_int("DATABASE_POOL_SIZE", 20)},
            # Server-side binding lets psycopg prepare the statements run for every
            # message: a statement run 5 times on a connection is prepared there, and
            # PostgreSQL then skips parsing and planning it (Django leaves preparing off
            # unless asked). Turn both off behind a pooler that cannot keep prepared
            # statements (PgBouncer < 1.21).
            "server_side_binding": server_side_binding,
            "prepare_threshold": 5 if server_side_binding else None,
        }
    # Test runs that share one server get their own test database, named after the data
    # directory, so two checkouts (or CI and a developer) never drop each other's.
    suffix = hashlib.sha256(str(DATA_DIR).encode()).hexdigest()[:8]
    config["TEST"] = {"NAME": f"test_{config['NAME']}_{suffix}"}
    return config


DATABASES = {"default": _database()}
# Points a helper process (a test's Celery worker) at another database of the same server.
if env_str("MAILHOST_DB_NAME"):
    DATABASES["default"]["NAME"] = env_str("MAILHOST_DB_NAME")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

# --- Mail ---------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not REDIS_URL
BLOB_DIR = env_path("MAILHOST_BLOB_DIR", DATA_DIR / "blobs")
# IMAP's folder index files (apps/imap/index_file.py), a cache kept on local disk: "off"
# loads every folder from the database after a restart instead.
IMAP_INDEX_DIR: Path | None = (
    None
    if env_str("MAILHOST_IMAP_INDEX_DIR").strip().lower() == "off"
    else env_path("MAILHOST_IMAP_INDEX_DIR", DATA_DIR / "imap-index")
)
DEFAULT_QUOTA_BYTES = env_int("MAILHOST_DEFAULT_QUOTA", 1024**3)
MAX_MESSAGE_SIZE = env_int("MAILHOST_MAX_MESSAGE_SIZE", 50 * 1024 * 1024)
# Seconds a successful password check is remembered, so a client that reconnects every
# minute does not pay a slow PBKDF2 hash each time.
AUTH_CACHE_SECONDS = env_int("MAILHOST_AUTH_CACHE_SECONDS", 300)
DNS_SERVERS = env_str("MAILHOST_DNS_SERVERS")
# Connections per node, in all and per client IP (IMAP also per user: one person's phone,
# desktop and webmail together; Dovecot's mail_max_userip_connections is 10). IMAP's other
# limits are in apps/imap/limits.py, each overridable by an IMAP_<NAME> setting.
# Server processes per node, each with its own socket on every port (SO_REUSEPORT, see
# apps/mailserver/processes.py): one per core uses them all. Connection limits are
# counted per process; throttles are shared (Redis, or a file cache in the data dir).
SERVER_PROCESSES = env_int("MAILHOST_PROCESSES", 1)
if SERVER_PROCESSES < 1:
    raise ImproperlyConfigured(f"MAILHOST_PROCESSES={SERVER_PROCESSES}: at least 1")
SMTP_MAX_CONNECTIONS = env_int("MAILHOST_SMTP_MAX_CONNECTIONS", 1000)
SMTP_MAX_PER_IP = env_int("MAILHOST_SMTP_MAX_PER_IP", 20)
IMAP_MAX_CONNECTIONS = env_int("MAILHOST_IMAP_MAX_CONNECTIONS", 5000)
IMAP_MAX_PER_IP = env_int("MAILHOST_IMAP_MAX_PER_IP", 50)
IMAP_MAX_PER_USER = env_int("MAILHOST_IMAP_MAX_PER_USER", 50)
POP3_MAX_CONNECTIONS = env_int("MAILHOST_POP3_MAX_CONNECTIONS", 1000)
POP3_MAX_PER_IP = env_int("MAILHOST_POP3_MAX_PER_IP", 20)
SUBMISSION_RATE_PER_HOUR = env_int("MAILHOST_SUBMISSION_RATE_PER_HOUR", 500)
# Loopback clients may relay without AUTH only when this is on (a local web app, say).
RELAY_FROM_LOOPBACK = env_bool("MAILHOST_RELAY_FROM_LOOPBACK", False)
# What to do when DMARC fails under p=reject: "reject" (550 at end of DATA) or "junk".
DMARC_REJECT_ACTION = env_str("MAILHOST_DMARC_REJECT_ACTION", "reject")
# Messages larger than this skip DKIM body verification (dkimpy needs them in memory).
DKIM_VERIFY_MAX_BYTES = env_int("MAILHOST_DKIM_VERIFY_MAX_BYTES", 16 * 1024 * 1024)

# Listener profile: "production" binds the standard ports, "development" (what `make run`
# uses) binds high ports so a user without root can try it. Both stay on loopback unless
# MAILHOST_LISTEN_HOST or a per-listener address says otherwise.
PROFILE = env_str("MAILHOST_PROFILE", "production")
LISTEN_HOST = env_str("MAILHOST_LISTEN_HOST", "127.0.0.1")
_PORTS = {
    "production": {
        "smtp": 25,
        "submission": 587,
        "submissions": 465,
        "imap": 143,
        "imaps": 993,
        "pop3": 110,
        "pop3s": 995,
        "web": 8000,
        # ACME HTTP-01 challenges (RFC 8555 §8.3) come to port 80; it serves the web app too.
        "http": 80,
    },
    "development": {
        "smtp": 2525,
        "submission": 2587,
        "submissions": 2465,
        "imap": 2143,
        "imaps": 2993,
        "pop3": 2110,
        "pop3s": 2995,
        "web": 8000,
        "http": 2080,
    },
}
LISTENERS = {
    name: env_address(f"MAILHOST_{name.upper()}", f"{LISTEN_HOST}:{port}")
    for name, port in _PORTS.get(PROFILE, _PORTS["production"]).items()
}
# Where port 80 is not served, ACME validates over port 443 instead (TLS-ALPN-01, RFC 8737):
# a listener that answers only those handshakes, and only while ACME may run.
_ALPN_BY_DEFAULT = (
    PROFILE == "production"
    and LISTENERS.get("http") is None
    and env_str("MAILHOST_ACME", "auto").strip().lower() != "off"
)
LISTENERS["tls_alpn"] = env_address(
    "MAILHOST_TLS_ALPN", f"{LISTEN_HOST}:443" if _ALPN_BY_DEFAULT else "off"
)
# The web app over TLS (HTTPS, SNI as on the mail ports): off unless given an address,
# e.g. 0.0.0.0:443 where no reverse proxy serves it.
LISTENERS["webs"] = env_address("MAILHOST_WEBS", "off")
TLS_CERT_FILE = env_path("MAILHOST_TLS_CERT", DATA_DIR / "tls" / "cert.pem")
TLS_KEY_FILE = env_path("MAILHOST_TLS_KEY", DATA_DIR / "tls" / "key.pem")
# Certificates served by name (SNI): one folder each (apps/mailserver/certificates.py).
TLS_CERTS_DIR = env_path("MAILHOST_TLS_CERTS_DIR", DATA_DIR / "certs")
# Mozilla's "intermediate" (TLS 1.2 with AEAD suites, and 1.3) or "modern" (TLS 1.3 only)
# on the client ports; port 25 is always intermediate (apps/mailserver/tls.py).
TLS_PROFILE = env_str("MAILHOST_TLS_PROFILE", "intermediate").strip().lower()
# An operator's own certificate: ACME "auto" stays off when one is configured.
TLS_CERT_CONFIGURED = bool(env_str("MAILHOST_TLS_CERT"))
# Plain-text AUTH is refused everywhere except, when this is on, from loopback clients.
ALLOW_PLAINTEXT_AUTH_LOOPBACK = env_bool("MAILHOST_ALLOW_PLAINTEXT_AUTH_LOOPBACK", False)

# --- Outbound relay (apps/relay) ---------------------------------------------------------
# The port of every remote MX. Production always uses 25 (RFC 5321 §4.5.4.1); tests map it
# to a server they start on 127.0.0.1.
RELAY_PORT = env_int("MAILHOST_RELAY_PORT", 25)


def _seconds_list(name: str, default: list[int]) -> list[int]:
    raw = env_list(name, [str(n) for n in default])
    if not all(item.isdigit() for item in raw):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a list of whole seconds")
    return [int(item) for item in raw]


# Seconds between attempts after a temporary failure: the last one repeats until the
# message expires (RELAY_MAX_AGE; RFC 5321 §4.5.4.1 suggests 4-5 days).
RELAY_RETRY_DELAYS = _seconds_list(
    "MAILHOST_RELAY_RETRY_DELAYS", [300, 900, 1800, 3600, 7200, 14400]
)
RELAY_MAX_AGE = env_int("MAILHOST_RELAY_MAX_AGE", 5 * 24 * 3600)
RELAY_DELAY_WARNING = env_int("MAILHOST_RELAY_DELAY_WARNING", 4 * 3600)
# How often the sweep runs due attempts whose Celery message was lost.
RELAY_SWEEP_SECONDS = env_int("MAILHOST_RELAY_SWEEP_SECONDS", 30)
# A due message whose Celery task has not run this long after it was sent is sent again.
RELAY_REDISPATCH_SECONDS = env_int("MAILHOST_RELAY_REDISPATCH_SECONDS", 300)
# A claimed message whose worker died is retried after this long.
RELAY_LEASE_SECONDS = env_int("MAILHOST_RELAY_LEASE_SECONDS", 1800)
# Seconds to wait for each reply (RFC 5321 §4.5.3.2 asks for minutes, not seconds).
RELAY_TIMEOUT = env_int("MAILHOST_RELAY_TIMEOUT", 300)
RELAY_CONNECT_TIMEOUT = env_int("MAILHOST_RELAY_CONNECT_TIMEOUT", 30)
# Simultaneous connections to one destination from every worker together: the first
# deliveries use RELAY_INITIAL_CONCURRENCY, one more for every that many that succeed, up to
# RELAY_MAX_PER_DESTINATION; each failure takes one away (apps/relay/concurrency.py, as
# Postfix's initial_destination_concurrency and default_destination_concurrency_limit).
RELAY_INITIAL_CONCURRENCY = env_int("MAILHOST_RELAY_INITIAL_CONCURRENCY", 2)
RELAY_MAX_PER_DESTINATION = env_int("MAILHOST_RELAY_MAX_PER_DESTINATION", 20)
# Reuse of idle connections (per worker process).
RELAY_IDLE_SECONDS = env_int("MAILHOST_RELAY_IDLE_SECONDS", 30)
RELAY_MESSAGES_PER_CONNECTION = env_int("MAILHOST_RELAY_MESSAGES_PER_CONNECTION", 100)
# STARTTLS to peers: "opportunistic" (encrypt when offered, deliver even with a bad
# certificate), "encrypt" (refuse to deliver in clear) or "verify" (a valid certificate).
RELAY_TLS_POLICY = env_str("MAILHOST_RELAY_TLS_POLICY", "opportunistic")
RELAY_CA_FILE = env_str("MAILHOST_RELAY_CA_FILE")  # extra trust anchors for peers, PEM
# The Celery queue relay tasks go to; empty means Celery's default queue, which every
# worker takes.
RELAY_QUEUE = env_str("MAILHOST_RELAY_QUEUE", "")
# Optional smart host: all outbound mail goes to this one server ("host:port" or "off"),
# with AUTH when a user is set, over STARTTLS or implicit TLS ("starttls" or "tls").
RELAY_SMARTHOST = env_address("MAILHOST_SMARTHOST", "off")
RELAY_SMARTHOST_USER = env_str("MAILHOST_SMARTHOST_USER")
RELAY_SMARTHOST_PASSWORD = env_str("MAILHOST_SMARTHOST_PASSWORD")
RELAY_SMARTHOST_TLS = env_str("MAILHOST_SMARTHOST_TLS", "starttls")
# MTA-STS (RFC 8461; apps/relay/mtasts.py): honour the policies destinations publish.
RELAY_MTA_STS = env_bool("MAILHOST_RELAY_MTA_STS", True)
# The port policies are fetched from over HTTPS: 443 everywhere but in tests, which serve
# them on a loopback port of their own.
MTA_STS_FETCH_PORT = env_int("MAILHOST_MTA_STS_FETCH_PORT", 443)
MTA_STS_FETCH_TIMEOUT = env_int("MAILHOST_MTA_STS_FETCH_TIMEOUT", 30)
# Our own policy, served at https://mta-sts.<domain>/.well-known/mta-sts.txt: "testing"
# (peers report failures but deliver), "enforce" or "none"; how long peers may cache it.
MTA_STS_MODE = env_str("MAILHOST_MTA_STS_MODE", "testing")
MTA_STS_MAX_AGE = env_int("MAILHOST_MTA_STS_MAX_AGE", 7 * 24 * 3600)
# Where peers send their TLS reports about our domains (RFC 8460 §3: rua=mailto:...);
# empty means postmaster@ each domain.
TLSRPT_RUA = env_str("MAILHOST_TLSRPT_RUA", "")

# --- Certificates from an ACME CA (RFC 8555; apps/mailserver/renewal.py) ----------------
# "auto": on in the production profile when the host name resolves to this machine and no
# own certificate is configured; "on" or "off" decide outright.
ACME = env_str("MAILHOST_ACME", "auto").strip().lower()
ACME_DIRECTORY = env_str(
    "MAILHOST_ACME_DIRECTORY", "https://acme-v02.api.letsencrypt.org/directory"
)
ACME_EMAIL = env_str("MAILHOST_ACME_EMAIL")
# A PEM file of the CAs to trust for the directory's HTTPS (a test CA); empty: the system's.
ACME_CA_BUNDLE = env_str("MAILHOST_ACME_CA_BUNDLE")
# The machine's public addresses when they are not on its interfaces (behind 1:1 NAT).
ACME_ADDRESSES = env_list("MAILHOST_ACME_ADDRESSES", [])
# The account key and the challenge answers every node serves.
ACME_STATE_DIR = DATA_DIR / "acme"
# Seconds before another order after a failed one; the last repeats. Let's Encrypt allows
# 5 failed validations per name an hour, so the first retry waits past that window.
ACME_RETRY_DELAYS = _seconds_list("MAILHOST_ACME_RETRY_DELAYS", [3600, 4 * 3600, 12 * 3600, 86400])
# How often the worker looks whether a certificate is due (cheap when it is not).
ACME_CHECK_SECONDS = env_int("MAILHOST_ACME_CHECK_SECONDS", 900)

# --- Celery -------------------------------------------------------------------------------
if EMBEDDED:
    _queue_dir = DATA_DIR / "queue"
    for _sub in ("in", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "mailhost.fsbroker:Transport"  # files appear whole
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "in"),
        "data_folder_out": str(_queue_dir / "in"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_queue_dir / "control"),
        # The worker looks for new task files this often (seconds); the default of 1 s
        # would add up to a second to every delivery, and a message takes two tasks (filing,
        # then relay) on its way out. A look is one directory listing.
        "polling_interval": 0.02,
    }
else:
    CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Every node and worker of one installation must agree on this; a test run picks its own
# so that two runs sharing a Redis never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env_str("MAILHOST_QUEUE", "mailhost")

# --- Caches (the auth cache and throttles; Redis when scaled out) -------------------------
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
elif SERVER_PROCESSES > 1:
    # Throttles and rate limits must count across the server processes (and the worker).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Messages escaped: client text never reaches the log as control characters.
    "formatters": {
        "plain": {
            "()": "mailhost.logs.EscapingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("MAILHOST_LOG_LEVEL", "INFO")},
    # aiosmtpd logs every command at INFO; its warnings and errors are enough.
    "loggers": {"mail.log": {"level": "WARNING"}},
}
CELERY_BEAT_SCHEDULE = {
    "collect-blobs": {"task": "mailstore.collect_blobs", "schedule": 3600.0},
    "index-folders": {"task": "mailstore.index_folders", "schedule": 300.0},
    "save-imap-indexes": {"task": "imap.save_indexes", "schedule": 300.0},
    "sweep-incoming": {"task": "inbound.sweep", "schedule": 30.0},
    "renew-certificates": {
        "task": "mailserver.renew_certificates",
        "schedule": float(ACME_CHECK_SECONDS),
    },
    # RFC 8460 §4.1: one report per UTC day, sent soon after it ends.
    "tls-reports": {"task": "relay.tls_reports", "schedule": crontab(minute=20, hour=0)},
    "sweep-relay": {
        "task": "relay.sweep",
        "schedule": float(RELAY_SWEEP_SECONDS),
        "options": {"queue": RELAY_QUEUE} if RELAY_QUEUE else {},
    },
}
