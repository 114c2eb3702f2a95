"""A lab worker: HTTP on 80 answering with its name, TLS on 443 (self-signed). Run in its namespace."""

from __future__ import annotations

import argparse
import http.server
import ssl
import threading


def handler(name: str) -> type[http.server.BaseHTTPRequestHandler]:
    body = f"{name}\n".encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    http.server.ThreadingHTTPServer.daemon_threads = True
    plain = http.server.ThreadingHTTPServer(("0.0.0.0", 80), handler(args.name))
    tls = http.server.ThreadingHTTPServer(("0.0.0.0", 443), handler(args.name))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    plain.serve_forever()


if __name__ == "__main__":
    main()
