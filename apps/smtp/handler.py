"""What the SMTP listeners decide: AUTH, MAIL, RCPT policy, and accepting a message.

MX (port 25) checks SPF, DKIM and DMARC and writes Authentication-Results; submission
(587/465) requires AUTH and checks that the sender is the user's. Either way 250 comes only
after the message is durable: in its Incoming row when small, else in a blob file first
(apps.mailstore.inbound).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3

from django.conf import settings

from apps.accounts import services as accounts
from apps.mailserver.limits import is_loopback
from apps.mailstore import inbound
from apps.mailstore.blobs import blob_store
from apps.smtp import headers, policy, replies
from apps.smtp.authcheck import check_inbound
from apps.smtp.data import Spool
from apps.smtp.params import MailFrom, RcptTo
from mailhost.sqlite import loopreader
from mailhost.threads import in_thread

log = logging.getLogger(__name__)


class MailHandler:
    def __init__(self, *, submission: bool, hostname: str, spool_dir: str | None = None):
        self.submission = submission
        self.hostname = hostname
        self.spool_dir = spool_dir

    def new_spool(self) -> Spool:
        return Spool(settings.MAX_MESSAGE_SIZE, self.spool_dir)

    def plaintext_auth_allowed(self, ip: str) -> bool:
        return settings.ALLOW_PLAINTEXT_AUTH_LOOPBACK and is_loopback(ip)

    async def authenticate(self, server, login: str, password: str) -> str:
        result = await in_thread(accounts.login, login, password, server.peer_ip())
        if result.blocked:
            return replies.AUTH_THROTTLED
        if result.user is None:
            await asyncio.sleep(result.delay)
            return replies.AUTH_INVALID
        server.session.authenticated = True
        server.session.auth_data = result.user
        return replies.AUTH_OK

    async def handle_MAIL(self, server, session, envelope, mail: MailFrom) -> str:
        user = session.auth_data if session.authenticated else None
        if self.submission and user is None:
            return replies.AUTH_REQUIRED
        if (
            server.listener == "submission"
            and not server.is_encrypted()
            and not (self.plaintext_auth_allowed(server.peer_ip()))
        ):
            return replies.MUST_STARTTLS
        if user is None:
            return replies.OK
        verdict = self._quick_sender_verdict(user.pk, mail.address)
        if verdict is None:
            verdict = await in_thread(policy.check_sender, user.pk, mail.address)
        return verdict

    @staticmethod
    def _quick_sender_verdict(user_id: int, address: str) -> str | None:
        """MAIL FROM's verdict from the loop's own SQLite reader when it can give one at
        once, as RCPT's below; None sends the check to a database thread."""
        reader = loopreader.for_this_thread()
        if reader is None:
            return None
        try:
            return policy.check_sender_quickly(user_id, address, reader.fetch_one)
        except sqlite3.Error:  # busy, or anything else: the thread's connection will tell
            return None

    async def handle_RCPT(self, server, session, envelope, rcpt: RcptTo):
        user = session.auth_data if session.authenticated else None
        sender_id = user.pk if user else None
        relay_ok = settings.RELAY_FROM_LOOPBACK and is_loopback(server.peer_ip())
        verdict = self._quick_verdict(rcpt.address, sender_id, relay_ok)
        if verdict is None:
            verdict = await in_thread(policy.check_recipient, rcpt.address, sender_id, relay_ok)
        if not verdict.accepted:
            return verdict.reply, None
        accepted = {
            "address": rcpt.address,
            "user_ids": verdict.user_ids,
            "external": verdict.external,
            "notify": rcpt.notify,
            "orcpt": rcpt.orcpt,
        }
        return verdict.reply, accepted

    @staticmethod
    def _quick_verdict(
        address: str, sender_id: int | None, relay_ok: bool
    ) -> policy.RecipientVerdict | None:
        """The verdict from the loop's own SQLite reader, when it can give one at once
        (mailhost/sqlite/loopreader.py); None sends the check to a database thread."""
        reader = loopreader.for_this_thread()
        if reader is None:
            return None
        try:
            return policy.check_recipient_quickly(address, sender_id, relay_ok, reader.fetch_one)
        except sqlite3.Error:  # busy, or anything else: the thread's connection will tell
            return None

    async def handle_message(self, server, session, envelope, spool: Spool) -> str:
        try:
            return await in_thread(
                self._accept, server.peer_ip(), session, envelope, spool, server.is_encrypted()
            )
        except Exception:
            log.exception("could not accept a message from %s", server.peer_ip())
            return replies.TEMPORARY_FAILURE

    def _accept(self, ip: str, session, envelope, spool: Spool, encrypted: bool) -> str:
        user = session.auth_data if session.authenticated else None
        qid = headers.queue_id()
        if user is not None:
            checked = self._check_submission(user, envelope, spool)
        else:
            checked = self._check_mx(ip, session, envelope, spool)
        if isinstance(checked, str):
            return checked  # refused
        prefix, auth_results, body = checked
        trace = headers.received(
            helo=session.host_name or "unknown",
            ip=ip,
            hostname=self.hostname,
            protocol=headers.protocol_name(
                session.extended_smtp, encrypted, user is not None, envelope.smtp_utf8
            ),
            qid=qid,
            recipient=envelope.recipients[0]["address"] if len(envelope.recipients) == 1 else None,
        )
        data, blob_key, size = self._keep(trace + prefix, spool, body)
        inbound.accept(
            data=data,
            blob_key=blob_key,
            size=size,
            source="submission" if user is not None else "mx",
            recipients=envelope.recipients,
            mail_from=envelope.mail_from or "",
            sender_id=user.pk if user is not None else None,
            envid=envelope.mail.envid or "",
            ret=envelope.mail.ret or "",
            auth_results=auth_results,
        )
        return replies.QUEUED.format(qid)

    def _check_submission(self, user, envelope, spool: Spool):
        """The From header must be the user's (RFC 6409 §4.4 lets us refuse); add a
        Message-ID and Date the client left out (RFC 6409 §8)."""
        head = headers.parse_head(spool.head(headers.HEADER_SCAN_LIMIT))
        authors = headers.from_addresses(head)
        # MAIL FROM passed the same check moments ago (handle_MAIL): an author who is the
        # envelope sender, as is usual, costs no second trip through the accounts.
        checked = (envelope.mail_from or "").lower()
        if not authors or not all(a == checked or policy.sender_owned(user.pk, a) for a in authors):
            return replies.SENDER_NOT_OWNED
        prefix = headers.missing_submission_headers(head, envelope.mail_from, self.hostname)
        return prefix, {}, None

    def _check_mx(self, ip: str, session, envelope, spool: Spool):
        verdict = check_inbound(
            ip=ip,
            helo=session.host_name or "",
            mail_from=envelope.mail_from,
            spool=spool,
            authserv_id=self.hostname,
        )
        if verdict.reject:
            return replies.DMARC_REJECT
        return verdict.header_bytes, verdict.summary, verdict.body

    def _keep(self, head: bytes, spool: Spool, body: bytes | None) -> tuple[bytes | None, str, int]:
        """(bytes, blob key, size) as `inbound.accept` takes them: a small message's bytes
        travel in its row; a big one is written to the blob store first (bytes None)."""
        size = len(head) + (len(body) if body is not None else spool.size)
        if not inbound.inline(size):
            return None, *self._store_blob(head, spool, body)
        data = head + (body if body is not None else spool.read_all())
        return data, hashlib.sha256(data).hexdigest(), len(data)

    def _store_blob(self, prefix: bytes, spool: Spool, body: bytes | None) -> tuple[str, int]:
        """Trace headers, then the message (`body` when it was rewritten, else the spool)."""
        writer = blob_store().writer()
        try:
            writer.write(prefix)
            for chunk in [body] if body is not None else spool.chunks():
                writer.write(chunk)
            return writer.commit(), writer.size
        except BaseException:
            writer.abort()
            raise
