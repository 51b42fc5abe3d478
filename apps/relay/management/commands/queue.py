"""`manage.py queue list|show|retry|hold|release|delete`: the outbound queue from the shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.relay import services
from apps.relay.models import QueuedMessage


def summary(row: QueuedMessage) -> str:
    recipients = ",".join(r["address"] for r in row.recipients)
    when = row.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"#{row.pk:<6} {row.state:<9} attempts={row.attempts} next={when} "
        f"from=<{row.mail_from}> to={recipients} {row.last_error[:60]}"
    ).rstrip()


def details(row: QueuedMessage) -> str:
    fields = {
        "id": row.pk,
        "state": row.state,
        "domain": row.domain,
        "mail_from": row.mail_from,
        "sender": row.sender_id,
        "size": row.size,
        "blob": row.blob_key,
        "envid": row.envid,
        "ret": row.ret,
        "smtputf8": row.smtputf8,
        "attempts": row.attempts,
        "created_at": row.created_at.isoformat(),
        "next_attempt_at": row.next_attempt_at.isoformat(),
        "last_error": row.last_error,
        "delay_warned": row.delay_warned,
        "recipients": row.recipients,
    }
    return json.dumps(fields, indent=2, ensure_ascii=False)


class Command(BaseCommand):
    help = "Look at and manage the outbound mail queue."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="queued messages, soonest first")
        listing.add_argument("--state", choices=QueuedMessage.State.values)
        listing.add_argument("--all", action="store_true", help="include delivered and failed")
        for action in ("show", "retry", "hold", "release", "delete"):
            sub.add_parser(action).add_argument("id", type=int)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list(options["state"], options["all"])
            return
        try:
            if action == "show":
                self.stdout.write(details(services.get(options["id"])))
            elif action == "delete":
                services.delete(options["id"])
                self.stdout.write(f"deleted #{options['id']}")
            else:
                operation = {"retry": services.retry_now, "hold": services.hold}.get(
                    action, services.release
                )
                self.stdout.write(summary(operation(options["id"])))
        except services.QueueError as exc:
            raise CommandError(str(exc)) from None

    def _list(self, state: str | None, everything: bool) -> None:
        rows = services.list_messages(state)
        if not state and not everything:
            rows = rows.exclude(state__in=["delivered", "failed"])
        for row in rows:
            self.stdout.write(summary(row))
