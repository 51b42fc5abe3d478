"""A real DNS server on 127.0.0.1 for tests: dnslib over UDP and TCP, records set by the test.

    with ZoneServer('example.org. TXT "v=spf1 -all"') as server:
        resolver = Resolver(server.nameservers)
        server.add("example.org. MX 10 mx.example.org.")
        server.servfail("broken.example.org")

Unknown names answer NXDOMAIN; names that exist (or have names below them) but lack the
asked type answer NOERROR with no records; CNAMEs inside the zone are followed. Negative
answers carry an SOA whose TTL is 0 unless asked otherwise (RFC 2308 §3, §5), so resolvers
do not cache them: a test may add a record that a moment ago did not exist.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import NamedTuple

from dnslib import QTYPE, RCODE, RR, SOA, TXT, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from apps.mailauth.dns import Resolver

CLASSIC_UDP_LIMIT = 512  # RFC 1035 §4.2.1: longer answers come truncated, then over TCP
MAX_CNAME_CHAIN = 8
POLL_INTERVAL = 0.02  # seconds
TXT_STRING_LIMIT = 255  # RFC 1035 §3.3.14: one character-string holds at most 255 octets


def _negative_soa(ttl: int) -> RR:
    """RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM); 0 means not
    at all (tests add records at run time), a few minutes is what real zones say."""
    return RR(
        ".",
        QTYPE.SOA,
        ttl=ttl,
        rdata=SOA("ns.test.", "hostmaster.test.", (1, 3600, 600, 86400, ttl)),
    )


class _Zone(BaseResolver):
    """The records and the names told to fail; dnslib calls `resolve` from its threads."""

    def __init__(self, negative_ttl: int = 0) -> None:
        self.negative_soa = _negative_soa(negative_ttl)
        self.lock = threading.Lock()
        self.records: list[RR] = []
        self.failing: set[DNSLabel] = set()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname, qtype = request.q.qname, request.q.qtype
        with self.lock:
            self.queries.append((str(qname).rstrip(".").lower(), QTYPE[qtype]))
            if qname in self.failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            answers = self._answers(qname, qtype)
            if not answers and not self._exists(qname):
                reply.header.rcode = RCODE.NXDOMAIN
        for rr in answers:
            reply.add_answer(rr)
        if not answers:
            reply.add_auth(self.negative_soa)
        return reply

    def _answers(self, qname: DNSLabel, qtype: int) -> list[RR]:
        chain: list[RR] = []
        for _ in range(MAX_CNAME_CHAIN):
            found = [rr for rr in self.records if rr.rname == qname and rr.rtype == qtype]
            if found or qtype == QTYPE.CNAME:
                return chain + found
            alias = [rr for rr in self.records if rr.rname == qname and rr.rtype == QTYPE.CNAME]
            if not alias:
                return chain
            chain.append(alias[0])
            qname = alias[0].rdata.label
        return chain

    def _exists(self, qname: DNSLabel) -> bool:
        # An empty non-terminal (a name with only names below it) exists: RFC 8020 §2.
        return any(rr.rname.matchSuffix(qname) for rr in self.records)


class _Handler(DNSHandler):
    """Answers too long for classic UDP come back truncated, so clients retry over TCP."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)
        packed: bytes = reply.pack()
        if self.protocol == "udp" and len(packed) > CLASSIC_UDP_LIMIT:
            # RFC 2181 §9: set TC. Unlike dnslib's own truncate(), keep the question:
            # resolvers match a reply to its query by it.
            truncated = request.reply()
            truncated.header.tc = 1
            packed = truncated.pack()
        return packed


def _quiet_logger() -> DNSLogger:
    return DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)


def _start_pair(zone: _Zone, address: str) -> tuple[DNSServer, DNSServer]:
    """A UDP and a TCP server on the same free port (a resolver retries over TCP there)."""
    for _ in range(20):
        udp = DNSServer(zone, address=address, port=0, handler=_Handler, logger=_quiet_logger())
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(
                zone, address=address, port=port, tcp=True, handler=_Handler, logger=_quiet_logger()
            )
        except OSError:  # the TCP side of that port is taken; try another port
            udp.server.server_close()
            continue
        return udp, tcp
    raise OSError("no port free for both UDP and TCP")


class ZoneServer:
    """A dnslib server on `address` port 0, serving zone-file text; changeable while running."""

    def __init__(
        self, zone: str = "", *, address: str = "127.0.0.1", negative_ttl: int = 0
    ) -> None:
        self._zone = _Zone(negative_ttl)
        self._address = address
        self._servers: tuple[DNSServer, DNSServer] | None = None
        self.port = 0
        if zone:
            self.add(zone)

    @property
    def nameservers(self) -> list[tuple[str, int]]:
        """Where to point a `Resolver`."""
        return [(self._address, self.port)]

    @property
    def queries(self) -> list[tuple[str, str]]:
        """(name, type) of every query answered so far, oldest first."""
        with self._zone.lock:
            return list(self._zone.queries)

    def add(self, zone: str) -> None:
        """Add records written as zone-file lines, e.g. 'example.org. 300 IN MX 10 mx.example.org.'.

        Names without a final dot are taken as absolute too.
        """
        records = RR.fromZone(zone, origin=".")
        with self._zone.lock:
            self._zone.records.extend(records)

    def add_txt(self, name: str, value: str) -> None:
        """Add one TXT record, split into several strings when longer than 255 octets."""
        data = value.encode()
        chunks = [data[i : i + TXT_STRING_LIMIT] for i in range(0, len(data), TXT_STRING_LIMIT)]
        record = RR(DNSLabel(name), QTYPE.TXT, rdata=TXT(chunks or [b""]))
        with self._zone.lock:
            self._zone.records.append(record)

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Remove the records of `name` (of one type, or all), and stop it failing."""
        label = DNSLabel(name)
        with self._zone.lock:
            self._zone.records = [
                rr
                for rr in self._zone.records
                if not (rr.rname == label and (rtype is None or QTYPE[rr.rtype] == rtype))
            ]
            self._zone.failing.discard(label)

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL for every query about `name`, as a broken authoritative server would."""
        with self._zone.lock:
            self._zone.failing.add(DNSLabel(name))

    def start(self) -> ZoneServer:
        udp, tcp = _start_pair(self._zone, self._address)
        self._servers = (udp, tcp)
        self.port = udp.server.server_address[1]
        for server in self._servers:
            # A short poll interval makes stop() quick: shutdown() waits for the next poll.
            threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": POLL_INTERVAL},
                name=f"dns-{self.port}",
                daemon=True,
            ).start()
        return self

    def stop(self) -> None:
        if self._servers is None:
            return
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers = None

    def __enter__(self) -> ZoneServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class DNSZone(NamedTuple):
    """A running `ZoneServer` and a `Resolver` that asks only it."""

    server: ZoneServer
    resolver: Resolver
