"""An HTTPS server on 127.0.0.1 port 0 that serves MTA-STS policy files for relay tests,
with a self-signed certificate for the `mta-sts.<domain>` names it is given; it records
every request."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from apps.mailserver.tls import ensure_certificate


class PolicyServer:
    """Answers GET /.well-known/mta-sts.txt with the body set for the Host asked for."""

    def __init__(self, directory: Path, name: str) -> None:
        self.cert, self.key = directory / f"{name}.pem", directory / f"{name}.key"
        ensure_certificate(self.cert, self.key, name)
        self.policies: dict[str, tuple[int, str]] = {}  # host -> (status, body)
        self.requests: list[tuple[str, str]] = []  # (host, path)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def serve(self, host: str, body: str, status: int = 200) -> None:
        self.policies[host] = (status, body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = self.headers.get("Host", "")
                server.requests.append((host, self.path))
                status, body = server.policies.get(host, (404, "not here\n"))
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                if 300 <= status < 400:
                    self.send_header("Location", "https://elsewhere.test/")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads `requests`, not stderr

        return Handler

    def start(self) -> PolicyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
