"""A lab worker: nginx (Debian's nginx-light) answering with the worker's name, HTTP on 80 (IPv4
and IPv6) and TLS on 443 with the lab's certificate. One process (no master), so that a drill's SIGKILL or
SIGSTOP of its pid kills or hangs the whole worker, as a crashed or hung backend would."""

from __future__ import annotations

import subprocess
from pathlib import Path

NGINX = "/usr/sbin/nginx"


def nginx_conf(name: str, prefix: Path, cert: Path, key: Path) -> str:
    """The worker's whole nginx.conf (pure): everything it writes stays under `prefix`."""
    return f"""# Managed by halb's lab: worker {name}.
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 8192;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    keepalive_requests 1000000;
    server {{
        listen 80 backlog=4096;
        listen [::]:80 backlog=4096;
        listen 443 ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            default_type text/plain;
            return 200 "{name}\\n";
        }}
        # Who the worker sees: the peer, and the client haproxy names in X-Forwarded-For (mode http).
        location = /whoami {{
            default_type text/plain;
            return 200 "{name} $remote_addr $http_x_forwarded_for\\n";
        }}
    }}
    # Behind haproxy's `send-proxy-v2`: the client's address from the PROXY header.
    server {{
        listen 8081 proxy_protocol backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{name} $proxy_protocol_addr\\n";
        }}
    }}
}}
"""


def command(name: str, prefix: Path, cert: Path, key: Path) -> list[str]:
    """Write the worker's config under `prefix` and return the command that runs it."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(name, prefix, cert, key))
    return [NGINX, "-p", str(prefix), "-c", str(conf)]


def self_signed(cert: Path, key: Path, name: str, days: int) -> None:
    """A self-signed RSA certificate and its key for a worker's nginx (the lab's TLS backends)."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
