"""The maildrop a POP3 session works on: INBOX as it was at login, plus the session's
deletion marks (RFC 1939 §5). Loading is a read-only query; removing happens at QUIT
through the store's services.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.mailstore.models import Folder, Message
from apps.mailstore.services import INBOX


@dataclass(frozen=True)
class Entry:
    uid: int
    size: int
    blob_key: str


@dataclass
class Maildrop:
    """Messages numbered from 1 in UID order; numbers stay put for the whole session."""

    folder_id: int
    uidvalidity: int
    entries: list[Entry]
    deleted: set[int] = field(default_factory=set)  # message numbers marked by DELE

    def get(self, number: int) -> Entry | None:
        """The message with this number, or None if there is none or it is marked."""
        if not 1 <= number <= len(self.entries) or number in self.deleted:
            return None
        return self.entries[number - 1]

    def exists(self, number: int) -> bool:
        return 1 <= number <= len(self.entries)

    def live(self) -> list[tuple[int, Entry]]:
        """(number, entry) for every message not marked as deleted."""
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.deleted]

    def stat(self) -> tuple[int, int]:
        """RFC 1939 §5 STAT: count and octets, not counting marked messages."""
        live = self.live()
        return len(live), sum(entry.size for _, entry in live)

    def unique_id(self, entry: Entry) -> str:
        """RFC 1939 §7 UIDL: unique in the maildrop and the same in every session.
        UIDVALIDITY.UID never repeats: a UID is not reused while UIDVALIDITY stands."""
        return f"{self.uidvalidity}.{entry.uid}"

    def deleted_uids(self) -> list[int]:
        return sorted(self.entries[n - 1].uid for n in self.deleted)


def load_maildrop(user_id: int) -> Maildrop:
    """The user's INBOX: each message's UID, size and blob (read-only)."""
    folder = Folder.objects.only("pk", "uidvalidity").get(user_id=user_id, name=INBOX)
    rows = (
        Message.objects.filter(folder_id=folder.pk)
        .order_by("uid")
        .values_list("uid", "size", "blob_key")
    )
    return Maildrop(folder.pk, folder.uidvalidity, [Entry(*row) for row in rows])
