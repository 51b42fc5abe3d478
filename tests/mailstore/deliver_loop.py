"""A writer process for the concurrency and crash tests: delivers N messages to one user
and prints "done <uid> <tag> <n>" after each delivery the store acknowledged.

Usage: python -m tests.mailstore.deliver_loop DB_NAME USER_ID COUNT TAG [KEPT_IN]

KEPT_IN "file" (the default) writes each message's bytes as a blob file first;
"database" files them as the pipeline does, in a StoredBlob row of the same transaction.
"""

from __future__ import annotations

import os
import sys

import django


def main() -> None:
    db_name, user_id, count, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    kept_in = sys.argv[5] if len(sys.argv) > 5 else "file"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    django.setup()
    from django.db import connections

    connections["default"].settings_dict["NAME"] = db_name  # the test database
    from apps.mailstore import services

    for n in range(count):
        raw = (
            f"From: writer-{tag}@example.net\r\nTo: someone@example.org\r\n"
            f"Subject: {tag} number {n}\r\nMessage-ID: <{tag}.{n}@example.net>\r\n\r\n"
            f"Body of message {n} from writer {tag}.\r\n" + "x" * 4000 + "\r\n"
        ).encode()
        new = (
            services.NewMessage.writing if kept_in == "database" else services.NewMessage.from_bytes
        )
        result = services.deliver(new(raw), [user_id])
        _, _, uid = result.delivered[0]
        print(f"done {uid} {tag} {n}", flush=True)


if __name__ == "__main__":
    main()
