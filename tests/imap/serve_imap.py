"""A second IMAP server process on the test database, for tests of what server processes
share only through the store: serves IMAPS on 127.0.0.1 port 0, prints "port N", and
stops when its standard input closes.

Usage: MAILHOST_DB_NAME=<test database> python -m tests.imap.serve_imap
"""

from __future__ import annotations

import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    django.setup()
    from django.conf import settings

    from tests.servers import RunningServer

    # The personas' passwords are hashed with the cheap hasher of the test run
    # (tests/conftest.py), which a server checks them with only when it is listed.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    server = RunningServer(("imaps",)).start()
    try:
        print(f"port {server.port('imaps')}", flush=True)
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
