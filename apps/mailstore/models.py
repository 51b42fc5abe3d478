"""Folders, subscriptions, messages, the expunge log and per-user usage.

A message's bytes live in the blob store under `blob_key` (a file, or a `StoredBlob` row
when small); the row holds what IMAP and the webmail need without reading them again:
flags, envelope, body structure, sort fields.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Account(models.Model):
    """Per-user counters: bytes and messages kept (for quota) and the next UIDVALIDITY."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mail_account"
    )
    used_bytes = models.BigIntegerField(default=0)
    message_count = models.BigIntegerField(default=0)
    next_uidvalidity = models.BigIntegerField()


class Folder(models.Model):
    """An IMAP mailbox. `name` is the full path with "/" between levels."""

    class SpecialUse(models.TextChoices):
        # RFC 6154 §2
        NONE = "", "none"
        DRAFTS = "\\Drafts"
        SENT = "\\Sent"
        TRASH = "\\Trash"
        JUNK = "\\Junk"
        ARCHIVE = "\\Archive"
        ALL = "\\All"
        FLAGGED = "\\Flagged"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=1000)
    uidvalidity = models.BigIntegerField()
    uidnext = models.BigIntegerField(default=1)
    highestmodseq = models.BigIntegerField(default=1)
    special_use = models.CharField(max_length=20, blank=True, default="")
    # Touched by every change; the cross-process change poller looks at recent ones.
    changed_at = models.DateTimeField(db_index=True)
    # Every message up to this UID has its full-text row (apps.mailstore.fulltext).
    indexed_uid = models.BigIntegerField(default=0)
    # The first UID no IMAP session has claimed as \Recent (RFC 3501 §2.3.2): messages
    # from here to UIDNEXT are recent to the next session that selects the folder
    # read-write (services.claim_recent), as Dovecot keeps its first_recent_uid.
    recent_uid = models.BigIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_folder")]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A name on a user's subscription list (RFC 9051 §6.3.7, LSUB and LIST (SUBSCRIBED)).

    Names, not folders: a name stays subscribed when its folder is deleted, and may be
    subscribed before one exists (RFC 3501 §6.3.6); creating a folder subscribes nothing.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=1000)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_subscription")]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """One message in one folder. Copies share the blob, not the row."""

    # No index of its own: the (folder, uid) constraint's index starts with it, and every
    # delivery would pay for a second one.
    folder = models.ForeignKey(
        Folder, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    uid = models.BigIntegerField()
    modseq = models.BigIntegerField()
    # System flags as columns so "UNSEEN" and "DELETED" are indexable (RFC 9051 §2.3.2).
    seen = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    draft = models.BooleanField(default=False)
    # Keywords, space separated with a space at each end so " $Label1 " matches with LIKE.
    keywords = models.TextField(default=" ")
    internal_date = models.DateTimeField()
    size = models.BigIntegerField()
    blob_key = models.CharField(max_length=64)
    # Parsed once at delivery (apps.mailstore.mime), so FETCH never re-parses.
    envelope = models.JSONField()
    body = models.JSONField()
    header_size = models.IntegerField()
    subject = models.TextField(default="")
    base_subject = models.TextField(default="")
    from_addr = models.CharField(max_length=320, default="")
    from_name = models.TextField(default="")
    to_addr = models.CharField(max_length=320, default="")
    to_name = models.TextField(default="")
    cc_addr = models.CharField(max_length=320, default="")
    sent_date = models.DateTimeField(null=True)
    message_id = models.CharField(max_length=998, default="")
    in_reply_to = models.TextField(default="")
    references = models.TextField(default="")
    thread_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["folder", "uid"], name="unique_uid")]
        indexes = [
            models.Index(fields=["folder", "modseq"], name="message_modseq"),
            models.Index(fields=["blob_key"], name="message_blob"),
            # What an IMAP session loads when it opens a folder, read from the index alone
            # (no visit to the wide rows): 100,000 messages in tens of milliseconds.
            models.Index(
                fields=[
                    "folder",
                    "uid",
                    "modseq",
                    "seen",
                    "answered",
                    "flagged",
                    "deleted",
                    "draft",
                ],
                name="message_flags",
            ),
            models.Index(
                fields=["folder", "uid"], condition=~models.Q(keywords=" "), name="message_keywords"
            ),
            # EXPUNGE and CLOSE look for the \Deleted messages of a folder: few, even in a
            # folder of 100,000 (a scan of those took 36-45 ms per EXPUNGE).
            models.Index(
                fields=["folder", "uid"], condition=models.Q(deleted=True), name="message_deleted"
            ),
        ]

    SYSTEM_FLAGS = {
        "\\Seen": "seen",
        "\\Answered": "answered",
        "\\Flagged": "flagged",
        "\\Deleted": "deleted",
        "\\Draft": "draft",
    }

    def flag_list(self) -> list[str]:
        system = [flag for flag, field in self.SYSTEM_FLAGS.items() if getattr(self, field)]
        return system + self.keywords.split()


class Expunged(models.Model):
    """A tombstone per expunged UID, so CONDSTORE/QRESYNC can report VANISHED (RFC 7162)."""

    folder = models.ForeignKey(Folder, on_delete=models.CASCADE, related_name="expunged")
    uid = models.BigIntegerField()
    modseq = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["folder", "modseq"], name="expunged_modseq")]


class Incoming(models.Model):
    """A message accepted by SMTP (or the webmail) and durable, waiting for the inbound
    pipeline to score it, file it for local users and hand remote recipients to the relay.

    SMTP says 250 only once this row has committed; the pipeline deletes it in the same
    transaction that files the message, so a crash anywhere files it exactly once.
    """

    class Source(models.TextChoices):
        MX = "mx"
        SUBMISSION = "submission"

    blob_key = models.CharField(max_length=64)
    size = models.BigIntegerField()
    source = models.CharField(max_length=20, choices=Source.choices)
    mail_from = models.CharField(max_length=320, blank=True, default="")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # [{"address": ..., "user_ids": [...], "external": [...], "notify": [...], "orcpt": ...}]
    recipients = models.JSONField()
    envid = models.CharField(max_length=100, blank=True, default="")
    ret = models.CharField(max_length=4, blank=True, default="")
    # SPF, DKIM and DMARC outcomes, for spam scoring.
    auth_results = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The message itself when it is small (up to inbound.INLINE_LIMIT): the row's commit
    # makes it durable, one fsync shared by a group, where a blob file costs two of its
    # own before SMTP may answer. The pipeline writes its blob (under blob_key) when it
    # files it. Null: the message is already in the blob store.
    data = models.BinaryField(null=True, blank=True)
    attempts = models.IntegerField(default=0)


class StoredBlob(models.Model):
    """A small message's bytes, kept in the database rather than in a file of the blob
    store (`apps.mailstore.blobs`): same content address (SHA-256), one copy per distinct
    message, durable with the transaction that files the message, with no file to create
    and fsync with its directory.

    `stored_at` is refreshed by every transaction that stores the bytes again, as a blob
    file's mtime is: the collector takes only rows older than its grace period that
    nothing names (apps.mailstore.maintenance).
    """

    key = models.CharField(max_length=64, primary_key=True)
    data = models.BinaryField()
    stored_at = models.DateTimeField()
