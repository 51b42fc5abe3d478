"""The SMTP client that carries mail to other servers (smtplib): EHLO, STARTTLS when offered,
AUTH to a smart host, then transactions whose replies become per-recipient results.

TLS (RFC 3207): the certificate is checked first; under the opportunistic policy a peer
whose certificate does not verify still gets the mail encrypted, and one whose TLS does
not work at all gets it in clear (reconnecting, as RFC 3207 §4.1 allows). Every outcome
is logged.
"""

from __future__ import annotations

import functools
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.relay import results
from apps.relay.results import Kind, RcptResult
from apps.relay.routing import Hop

log = logging.getLogger(__name__)

# TLS modes tried in order, per policy: "verify" checks the certificate and host name,
# "encrypt" takes any certificate, "plain" skips STARTTLS.
TLS_MODES = {
    "opportunistic": ("verify", "encrypt", "plain"),
    "encrypt": ("verify", "encrypt"),
    "verify": ("verify",),
}
_XTEXT_SAFE = set(range(0x21, 0x7F)) - {ord("+"), ord("=")}  # RFC 3461 §4 xchar


class SessionError(Exception):
    """The server could not be used at all (connection, greeting, TLS, AUTH): the next
    host may do better. `result` applies to every recipient when none does."""

    def __init__(self, result: RcptResult) -> None:
        super().__init__(result.diagnostic)
        self.result = result


class _TLSFailed(Exception):
    pass


@dataclass(frozen=True)
class Profile:
    """How to talk to a server: our name, the TLS policy, timeouts, AUTH for a smart host."""

    helo: str
    tls_policy: str = "opportunistic"
    ca_file: str = ""
    timeout: float = 300
    connect_timeout: float = 30
    implicit_tls: bool = False  # a smart host on port 465 (RFC 8314 §3.3)
    user: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: Sequence[dict]  # {"address", "notify", "orcpt"}
    ret: str = ""
    envid: str = ""
    smtputf8: bool = False


@dataclass(frozen=True)
class TLSState:
    version: str = ""
    cipher: str = ""
    verified: bool = False
    problem: str = ""  # why the certificate did not verify, or why TLS was skipped
    resumed: bool = False  # an earlier session resumed: no full handshake

    def describe(self) -> str:
        if not self.version:
            return f"no TLS ({self.problem})" if self.problem else "no TLS"
        check = (
            "certificate verified"
            if self.verified
            else f"certificate NOT verified ({self.problem})"
        )
        return f"{self.version} {self.cipher}{', resumed' if self.resumed else ''}, {check}"


# --- pure helpers -------------------------------------------------------------------------


def xtext(value: str) -> str:
    """RFC 3461 §4: octets outside "!".."~", and "+" and "=", become "+HH"."""
    return "".join(chr(b) if b in _XTEXT_SAFE else f"+{b:02X}" for b in value.encode("utf-8"))


def utf8_need(envelope: Envelope, data: bytes) -> str:
    """Why the message needs SMTPUTF8 (RFC 6531): "address", "headers", or "" if it does not."""
    addresses = [envelope.mail_from, *(r["address"] for r in envelope.recipients)]
    if envelope.smtputf8 or not all(a.isascii() for a in addresses):
        return "address"
    head = data.split(b"\r\n\r\n", 1)[0]
    if not head.isascii():
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return ""  # legacy 8-bit junk, not RFC 6532 headers: carried as it is
        return "headers"
    return ""


def mail_options(envelope: Envelope, data: bytes, features: dict[str, str]) -> list[str]:
    options = []
    if "size" in features:
        options.append(f"SIZE={len(data)}")  # RFC 1870 §6
    if "8bitmime" in features and not data.isascii():
        options.append("BODY=8BITMIME")  # RFC 6152 §3
    if "smtputf8" in features and utf8_need(envelope, data):
        options.append("SMTPUTF8")  # RFC 6531 §3.4
    if "dsn" in features:  # RFC 3461 §4.3, §4.4: pass the sender's DSN wishes on
        if envelope.ret:
            options.append(f"RET={envelope.ret}")
        if envelope.envid:
            options.append(f"ENVID={xtext(envelope.envid)}")
    return options


def rcpt_options(recipient: dict, features: dict[str, str]) -> list[str]:
    if "dsn" not in features:
        return []
    options = []
    if recipient.get("notify"):
        options.append("NOTIFY=" + ",".join(recipient["notify"]))  # RFC 3461 §4.1
    orcpt = recipient.get("orcpt") or ""
    if ";" in orcpt:  # RFC 3461 §4.2: addr-type ";" xtext
        kind, _, address = orcpt.partition(";")
        options.append(f"ORCPT={kind};{xtext(address)}")
    return options


def refusal(envelope: Envelope, data: bytes, features: dict[str, str]) -> RcptResult | None:
    """A reason this server cannot take the message at all, known before MAIL FROM."""
    limit = features.get("size", "")
    if limit.isdigit() and 0 < int(limit) < len(data):
        return results.permanent(
            results.TOO_BIG, f"message of {len(data)} octets exceeds the server's limit of {limit}"
        )  # RFC 1870 §6.1
    need = utf8_need(envelope, data)
    if need and "smtputf8" not in features:
        status = results.NON_ASCII_ADDRESS if need == "address" else results.NON_ASCII_HEADERS
        return results.permanent(status, "the message needs SMTPUTF8, which the server lacks")
    return None


def _params(options: Sequence[str]) -> str:
    return "".join(f" {option}" for option in options)


def dot_stuffed(data: bytes) -> bytes:
    """The message as DATA sends it: a leading dot doubled on every line, CRLF at the end,
    and the lone dot that ends it (RFC 5321 §4.5.2, §4.1.1.4)."""
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


# --- connections --------------------------------------------------------------------------


class _SMTP(smtplib.SMTP):
    """smtplib connecting to one address we resolved, while TLS checks the host's name."""

    def __init__(self, host: str, address: str, port: int, profile: Profile) -> None:
        self.address = address
        self.connect_timeout = profile.connect_timeout
        super().__init__(host, port, local_hostname=profile.helo, timeout=profile.timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.address, port), self.connect_timeout)
        sock.settimeout(timeout)
        return sock


class _SMTPSSL(_SMTP):
    """Implicit TLS (a smart host on 465)."""

    def __init__(
        self, host: str, address: str, port: int, profile: Profile, context: ssl.SSLContext
    ):
        self.context = context
        super().__init__(host, address, port, profile)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.context.wrap_socket(
            super()._get_socket(host, port, timeout), server_hostname=host
        )


class _ResumingContext(ssl.SSLContext):
    """A client context for one server that offers the last TLS session it was given, so
    a reconnect resumes it (RFC 8446 §2.2, RFC 5077) instead of a full handshake."""

    last_session: ssl.SSLSession | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if kwargs.get("session") is None:
            kwargs["session"] = self.last_session
        return super().wrap_socket(*args, **kwargs)


def tls_context(verify: bool, ca_file: str = "") -> ssl.SSLContext:
    """TLS 1.2 or later; with `verify`, the system's trust anchors (and `ca_file`)."""
    context = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        context.load_default_certs()
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@functools.lru_cache(maxsize=256)
def _server_context(
    host: str, address: str, port: int, verify: bool, ca_file: str
) -> ssl.SSLContext:
    """One context per server and TLS mode, kept: loading trust anchors costs more than a
    handshake, and a session can only be resumed through the context that made it."""
    return tls_context(verify, ca_file)


def _context(hop: Hop, address: str, profile: Profile, mode: str) -> ssl.SSLContext:
    return _server_context(hop.host, address, hop.port, mode == "verify", profile.ca_file)


def _remember_session(smtp: smtplib.SMTP, context: ssl.SSLContext) -> None:
    """Keep the session for the next connection (read after EHLO: TLS 1.3 sends its
    tickets after the handshake)."""
    session = getattr(smtp.sock, "session", None)
    if isinstance(context, _ResumingContext) and session is not None:
        context.last_session = session


def _tls_state(smtp: smtplib.SMTP, verified: bool, problem: str) -> TLSState:
    sock: Any = smtp.sock
    cipher = sock.cipher() or ("", "", 0)
    return TLSState(
        sock.version() or "", cipher[0], verified, "" if verified else problem, sock.session_reused
    )


def _connect(hop: Hop, address: str, profile: Profile, mode: str) -> smtplib.SMTP:
    where = f"{hop.host} [{address}]:{hop.port}"
    try:
        if profile.implicit_tls:
            return _SMTPSSL(
                hop.host, address, hop.port, profile, _context(hop, address, profile, mode)
            )
        return _SMTP(hop.host, address, hop.port, profile)
    except ssl.SSLCertVerificationError as exc:
        raise _TLSFailed(f"certificate of {where}: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise _TLSFailed(f"TLS with {where}: {exc}") from None
    except smtplib.SMTPConnectError as exc:
        raise SessionError(
            results.from_reply(exc.smtp_code, exc.smtp_error, remote_mta=hop.host)
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SessionError(
            results.temporary(results.NETWORK_TEMPORARY, f"{where}: {exc or type(exc).__name__}")
        ) from None


def _greet(smtp: smtplib.SMTP, hop: Hop) -> None:
    code, text = smtp.ehlo()
    if not 200 <= code < 300:
        code, text = smtp.helo()  # RFC 5321 §3.2: fall back to HELO
    if not 200 <= code < 300:
        raise SessionError(results.from_reply(code, text, remote_mta=hop.host))


def _starttls(smtp: smtplib.SMTP, hop: Hop, address: str, profile: Profile, mode: str) -> None:
    try:
        smtp.starttls(context=_context(hop, address, profile, mode))
    except ssl.SSLCertVerificationError as exc:
        raise _TLSFailed(f"certificate of {hop.host}: {exc.verify_message}") from None
    except (ssl.SSLError, OSError, smtplib.SMTPException) as exc:
        raise _TLSFailed(f"STARTTLS with {hop.host}: {exc}") from None
    _greet(smtp, hop)  # RFC 3207 §4.2: forget what was said before TLS; EHLO again


def _authenticate(smtp: smtplib.SMTP, hop: Hop, profile: Profile) -> None:
    try:
        smtp.login(profile.user, profile.password)
    except smtplib.SMTPException as exc:
        # A refused login is the admin's to fix: keep the mail queued rather than bounce it.
        raise SessionError(
            results.temporary(results.SECURITY_TEMPORARY, f"AUTH at {hop.host} failed: {exc}")
        ) from None


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


def _open_mode(hop: Hop, address: str, profile: Profile, mode: str, problem: str) -> Session:
    smtp = _connect(hop, address, profile, mode)
    try:
        _greet(smtp, hop)
        tls = TLSState(problem=problem or "not offered")
        if profile.implicit_tls:
            tls = _tls_state(smtp, mode == "verify", problem)
        elif mode != "plain" and smtp.has_extn("starttls"):
            _starttls(smtp, hop, address, profile, mode)
            tls = _tls_state(smtp, mode == "verify", problem)
        elif "plain" not in TLS_MODES[profile.tls_policy]:
            raise SessionError(
                results.temporary(results.SECURITY_TEMPORARY, f"{hop.host} does not offer STARTTLS")
            )
        if tls.version:
            _remember_session(smtp, _context(hop, address, profile, mode))
        if profile.user:
            _authenticate(smtp, hop, profile)
    except (SessionError, _TLSFailed):
        _close_quietly(smtp)
        raise
    except (OSError, smtplib.SMTPException) as exc:  # dropped or timed out mid-greeting
        _close_quietly(smtp)
        raise SessionError(
            results.temporary(results.NETWORK_TEMPORARY, f"{hop.host} [{address}]: {exc}")
        ) from None
    except BaseException:
        _close_quietly(smtp)
        raise
    return Session(smtp, hop, address, tls)


def open_session(hop: Hop, address: str, profile: Profile) -> Session:
    """A ready session with the server at `address`, or SessionError."""
    problem = ""
    for mode in TLS_MODES.get(profile.tls_policy, TLS_MODES["verify"]):
        try:
            session = _open_mode(hop, address, profile, mode, problem)
        except _TLSFailed as exc:
            problem = str(exc)
            log.info("relay: %s; trying again without that", problem)
            continue
        log.info("relay: connected to %s [%s]: %s", hop.host, address, session.tls.describe())
        return session
    raise SessionError(results.temporary(results.SECURITY_TEMPORARY, problem))


class Session:
    """One open connection; carries transactions until closed or broken."""

    def __init__(self, smtp: smtplib.SMTP, hop: Hop, address: str, tls: TLSState) -> None:
        self.smtp = smtp
        self.hop = hop
        self.address = address
        self.tls = tls
        self.transactions = 0
        self.broken = False

    @property
    def features(self) -> dict[str, str]:
        return self.smtp.esmtp_features

    def send(self, envelope: Envelope, data: bytes) -> dict[str, RcptResult]:
        """One transaction for every recipient of `envelope`; a result for each."""
        addresses = [r["address"] for r in envelope.recipients]
        refused = refusal(envelope, data, self.features)
        if refused is not None:
            return dict.fromkeys(addresses, refused)
        self.transactions += 1
        try:
            return self._transaction(envelope, data)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.broken = True
            lost = results.temporary(
                results.NETWORK_TEMPORARY,
                f"connection to {self.hop.host} lost: {exc}",
                self.hop.host,
            )
            return dict.fromkeys(addresses, lost)

    def _transaction(self, envelope: Envelope, data: bytes) -> dict[str, RcptResult]:
        if "pipelining" in self.features:
            return self._pipelined(envelope, data)
        code, text = self.smtp.mail(envelope.mail_from, mail_options(envelope, data, self.features))
        if code != 250:
            self._after_refusal(code)
            failed = results.from_reply(code, text, remote_mta=self.hop.host)
            return {r["address"]: failed for r in envelope.recipients}
        outcome: dict[str, RcptResult] = {}
        accepted = []
        for recipient in envelope.recipients:
            code, text = self.smtp.rcpt(
                recipient["address"], rcpt_options(recipient, self.features)
            )
            if code in (250, 251):
                accepted.append(recipient["address"])
            else:
                outcome[recipient["address"]] = results.from_reply(
                    code, text, remote_mta=self.hop.host
                )
        if not accepted:
            self._after_refusal(0)
            return outcome
        code, final = self._data(data)
        return self._delivered(outcome, accepted, code, final)

    def _delivered(
        self, outcome: dict[str, RcptResult], accepted: list[str], code: int, final: bytes | str
    ) -> dict[str, RcptResult]:
        """The reply after the message (or to DATA) applies to every accepted recipient."""
        done = Kind.ACCEPTED if "dsn" in self.features else Kind.RELAYED
        reply = results.from_reply(code, final, remote_mta=self.hop.host, accepted=done)
        outcome.update(dict.fromkeys(accepted, reply))
        if code == 421:
            self.broken = True
        return outcome

    def _pipelined(self, envelope: Envelope, data: bytes) -> dict[str, RcptResult]:
        """RFC 2920 §3.1: MAIL, every RCPT and DATA in one write, then every reply read
        and checked in order: one round trip for the envelope instead of one per command."""
        options = mail_options(envelope, data, self.features)
        if "SMTPUTF8" in options:
            self.smtp.command_encoding = "utf-8"  # RFC 6531 §3.4, as smtplib.mail() does
        commands = [f"MAIL FROM:{smtplib.quoteaddr(envelope.mail_from)}{_params(options)}"]
        for recipient in envelope.recipients:
            extra = _params(rcpt_options(recipient, self.features))
            commands.append(f"RCPT TO:{smtplib.quoteaddr(recipient['address'])}{extra}")
        self.smtp.send("".join(f"{command}\r\n" for command in [*commands, "DATA"]))
        mail_code, mail_text = self.smtp.getreply()
        outcome: dict[str, RcptResult] = {}
        accepted = []
        for recipient in envelope.recipients:
            code, text = self.smtp.getreply()
            if mail_code != 250:
                code, text = mail_code, mail_text  # the RCPTs failed because MAIL did
            if code in (250, 251):
                accepted.append(recipient["address"])
            else:
                outcome[recipient["address"]] = results.from_reply(
                    code, text, remote_mta=self.hop.host
                )
        data_code, data_text = self.smtp.getreply()
        if data_code != 354:
            self._after_refusal(data_code)
            return self._delivered(outcome, accepted, data_code, data_text) if accepted else outcome
        if not accepted:
            # RFC 2920 §3.1: DATA accepted with no recipient: end it with a lone dot.
            self.smtp.send(b".\r\n")
            self.smtp.getreply()
            return outcome
        self.smtp.send(dot_stuffed(data))
        code, final = self.smtp.getreply()
        return self._delivered(outcome, accepted, code, final)

    def _data(self, data: bytes) -> tuple[int, bytes | str]:
        try:
            return self.smtp.data(data)
        except smtplib.SMTPDataError as exc:  # refused at DATA or after the final dot
            return exc.smtp_code, exc.smtp_error

    def _after_refusal(self, code: int) -> None:
        if code == 421 or not self.reset():  # RFC 5321 §3.8: the server is closing the channel
            self.broken = True

    def reset(self) -> bool:
        """RSET (RFC 5321 §4.1.1.5): ready for the next transaction, and proof it is alive."""
        try:
            return self.smtp.rset()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            _close_quietly(self.smtp)
