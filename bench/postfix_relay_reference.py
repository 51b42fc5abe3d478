"""Reference: Postfix relaying to the smart host of bench/relay_bench.py, on this machine.

Builds a private, throw-away Postfix in a scratch directory (smtpd on 127.0.0.1:PORT, a
high port; no standard mail port is bound) whose relayhost is the same test peer as
relay_bench.py's: tests/relay/sink.py on loopback with STARTTLS, AUTH and PIPELINING.
Postfix's smtp client must use TLS there (smtp_tls_security_level = encrypt: Postfix does
not match a certificate to an IP address nexthop, where Mailhost verifies) and logs in
(SASL PLAIN, libsasl2-modules). Postfix's own smtp-source sends N messages of 4 KB over C
sessions, from loopback (mynetworks: no STARTTLS or AUTH on that side, which smtp-source
cannot do) and unsigned (no DKIM). Prints the rate from the first message sent to the
last one at the smart host, and the time from each message's queueing to its arrival.

Run as root, with the Debian packages postfix and libsasl2-modules installed without
their services started (see bench/postfix_reference.sh's header):

    .venv/bin/python bench/postfix_relay_reference.py [--messages 2000] [--sessions 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and not __package__:
    # Run as a file (`python bench/postfix_relay_reference.py`): start again as the module,
    # with the checkout importable, as `python -m bench.postfix_relay_reference` is.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.getenv("PYTHONPATH")]))
    os.execv(sys.executable, [sys.executable, "-m", "bench.postfix_relay_reference", *sys.argv[1:]])

from apps.mailserver.tls import ensure_certificate  # noqa: E402
from tests.relay.sink import Sink  # noqa: E402

SMARTHOST_LOGIN = ("relay", "relay-secret")
STANDARD_PORTS = {25, 110, 143, 465, 587, 993, 995}
logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's deprecation notices


def postconf(config: Path, *args: str) -> None:
    subprocess.run(["postconf", "-c", str(config), *args], check=True)


def build(scratch: Path, port: int, sink: Sink, cert: Path) -> Path:
    """main.cf and master.cf of the private instance; returns its configuration dir."""
    config, queue, data = scratch / "postfix", scratch / "queue", scratch / "data"
    for folder in (config, queue, data):
        folder.mkdir()
    shutil.chown(data, "postfix", "postfix")
    (config / "main.cf").write_text("")
    shutil.copy("/etc/postfix/master.cf", config / "master.cf")
    passwords = config / "sasl_passwd"
    passwords.write_text(f"[127.0.0.1]:{sink.port} {SMARTHOST_LOGIN[0]}:{SMARTHOST_LOGIN[1]}\n")
    postconf(
        config,
        "-e",
        "compatibility_level = 3.6",
        f"queue_directory = {queue}",
        f"data_directory = {data}",
        "mail_owner = postfix",
        "setgid_group = postdrop",
        f"maillog_file = {scratch}/maillog",
        f"maillog_file_prefixes = {scratch}",
        "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4",
        "myhostname = mx.bench.test",
        "mydestination = localhost",
        "alias_maps =",
        "alias_database =",
        "mynetworks = 127.0.0.0/8",
        "smtpd_relay_restrictions = permit_mynetworks, reject",
        f"relayhost = [127.0.0.1]:{sink.port}",
        "smtp_tls_security_level = encrypt",
        f"smtp_tls_CAfile = {cert}",
        f"smtp_tls_session_cache_database = btree:{data}/smtp_scache",
        "smtp_sasl_auth_enable = yes",
        f"smtp_sasl_password_maps = texthash:{passwords}",
        "smtp_sasl_security_options = noanonymous",
        "biff = no",
    )
    postconf(config, "-F", "*/*/chroot = n")
    postconf(config, "-MX", "smtp/inet")
    postconf(config, "-M", f"127.0.0.1:{port}/inet = 127.0.0.1:{port} inet n - n - - smtpd")
    subprocess.run(["postfix", "-c", str(config), "check"], check=True)
    return config


def wait_for(sink: Sink, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(sink.messages()) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def source(port: int, sessions: int, count: int) -> None:
    """smtp-source: 4 KB messages, each session kept open for the next (-d)."""
    command = ["smtp-source", "-d", "-s", str(sessions), "-l", "4096", "-m", str(count)]
    command += ["-f", "bench@bench.test", "-t", "r@sink.test", f"127.0.0.1:{port}"]
    subprocess.run(command, check=True)


def measure(port: int, sink: Sink, sessions: int, total: int, timeout: float) -> dict:
    source(port, 1, 1)
    if not wait_for(sink, 1, 120):
        raise SystemExit("Postfix relayed nothing within two minutes")
    sink.reset()
    sink.pipelining = True
    started = time.time()
    source(port, sessions, total)
    submitted = time.time() - started
    wait_for(sink, total, timeout)
    arrived = sorted(m.at for m in sink.messages())
    return {
        "delivered": len(arrived),
        "accept_rate": total / submitted,
        "rate": len(arrived) / (arrived[-1] - started),
        "median_arrival": statistics.median(arrived) - started,
        "connections": sink.connections,
        "tls": sum(m.tls for m in sink.messages()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--timeout", type=float, default=600)
    options = parser.parse_args()
    if options.port in STANDARD_PORTS or os.geteuid() != 0:
        raise SystemExit("run as root, on a port that is not a standard mail port")
    scratch = Path(tempfile.mkdtemp(prefix="postfix-relay-"))
    scratch.chmod(0o755)  # the postfix user must traverse it
    cert, key = scratch / "smarthost.pem", scratch / "smarthost.key"
    ensure_certificate(cert, key, "smarthost.bench.test")
    sink = Sink(cert=cert, key=key, credentials=SMARTHOST_LOGIN).start()
    config = build(scratch, options.port, sink, cert)
    try:
        subprocess.run(["postfix", "-c", str(config), "start"], check=True, capture_output=True)
        time.sleep(1)
        result = measure(options.port, sink, options.sessions, options.messages, options.timeout)
    finally:
        subprocess.run(["postfix", "-c", str(config), "stop"], capture_output=True)
        sink.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    version = subprocess.run(
        ["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"Postfix {version}: {options.messages} accepted from smtp-source over "
        f"{options.sessions} sessions at {result['accept_rate']:,.0f} msgs/s; "
        f"{result['delivered']} relayed to the STARTTLS smart host ({result['tls']} over TLS, "
        f"{result['connections']} connections, unsigned) end to end at "
        f"{result['rate']:,.1f} msgs/s; median arrival {result['median_arrival']:.2f} s "
        "after the first message was sent",
        flush=True,
    )


if __name__ == "__main__":
    main()
