"""The benchmark's edge (variant e): a Debian nginx in front of the gateway, as an operator would run one.

It terminates mutual TLS with the dev PKI (a certificate asked for, not required, like the gateway's own listener),
drops any client-sent `Client-Cert`/`Client-Cert-Chain`, and forwards the verified certificate as RFC 9440
`Client-Cert: :<base64 DER>:` over kept-alive HTTP/1.1 connections (upstream `keepalive`) to the gateway listening on
plain HTTP on loopback, which honours the header from this address only (OBGW_TRUSTED_PROXIES). One worker process.

nginx knows the verified certificate only as PEM (`$ssl_client_raw_cert`). A PEM body *is* the DER's base64, so
an njs function (Debian's `libnginx-mod-http-js`, `js_set`) drops the armour lines and line breaks: no map can
remove a varying number of line breaks. Where nginx or its njs module is missing, HAProxy does the same job
(`ssl_c_der,base64` is RFC 9440's byte sequence as it stands); `obgw demo-cluster`'s HAProxyEdge
(gateway/cli/_topology.py) is not reused because it speaks TLS to health-checked nodes, not plain HTTP to one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from gateway.children import die_with_parent, listening, stop
from gateway.server import FAPI_CIPHERS

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
INSTALL = "apt-get install -y --no-install-recommends nginx libnginx-mod-http-js (or haproxy)"
READY_SECONDS = 15

# The verified certificate as an RFC 9440 byte sequence; nothing for a connection without one.
RFC9440_JS = """function rfc9440(r) {
    if (r.variables.ssl_client_verify !== 'SUCCESS') {
        return '';
    }
    return ':' + r.variables.ssl_client_raw_cert.replace(/-----[A-Z ]+-----/g, '').replace(/\\s+/g, '') + ':';
}
export default {rfc9440};
"""


def installed(name: str) -> str | None:
    """The path of the program `name` (also in sbin, off a user's PATH), or None."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


class Edge:
    """One edge process under `directory`, listening with mutual TLS on `port`, forwarding to `upstream` (a port)."""

    name = ""        # what the report calls it
    check_flag = ""  # the command-line flag that only checks the configuration

    def __init__(self, binary: str, directory: Path, port: int, upstream: int, pki: Path) -> None:
        self.binary, self.directory, self.port, self.upstream, self.pki = binary, directory, port, upstream, pki
        self.process: subprocess.Popen[bytes] | None = None
        self._log = directory / "edge.log"

    def configure(self) -> list[str]:
        """Write the configuration under `directory`; return the arguments that run it (with `check_flag` added, they
        only check it)."""
        raise NotImplementedError

    def start(self) -> Edge:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        command = self.configure()
        checked = subprocess.run([self.binary, *command, self.check_flag], capture_output=True, text=True,
                                 check=False)
        if checked.returncode != 0:
            said = checked.stdout + checked.stderr
            raise RuntimeError(f"{self.name} refuses its configuration: {said[-2000:]}")
        with self._log.open("wb") as log:
            self.process = subprocess.Popen([self.binary, *command], stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=die_with_parent)
        if listening(self.process, self.port, READY_SECONDS):
            return self
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on 127.0.0.1:{self.port}:\n{self._log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def __enter__(self) -> Edge:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class NginxEdge(Edge):
    name = "nginx + njs"
    check_flag = "-t"

    def configure(self) -> list[str]:
        d = self.directory.resolve()
        (d / "client_cert.js").write_text(RFC9440_JS)
        temp = "\n".join(f"  {kind}_temp_path {d / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                         "scgi"))
        (d / "nginx.conf").write_text(f"""daemon off;
master_process on;
worker_processes 1;
pid {d / "nginx.pid"};
error_log {d / "error.log"} warn;
load_module {NJS_MODULE};
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}
  js_path {d};
  js_import cert from client_cert.js;
  js_set $client_cert cert.rfc9440;
  upstream gateway {{
    server 127.0.0.1:{self.upstream};
    keepalive 64;
    keepalive_requests 100000;
  }}
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {(self.pki / "server.pem").resolve()};
    ssl_certificate_key {(self.pki / "server.key").resolve()};
    ssl_client_certificate {(self.pki / "ca.pem").resolve()};
    ssl_verify_client optional;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {FAPI_CIPHERS};
    keepalive_requests 100000;
    location / {{
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # set here, so the client's own fields of these names are never passed on (empty: not sent at all)
      proxy_set_header Client-Cert $client_cert;
      proxy_set_header Client-Cert-Chain "";
    }}
  }}
}}
""")
        return ["-e", str(d / "error.log"), "-p", str(d), "-c", str(d / "nginx.conf")]


class HAProxyEdge(Edge):
    name = "haproxy"
    check_flag = "-c"

    def configure(self) -> list[str]:
        d = self.directory.resolve()
        key = os.open(d / "edge.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(key, "wb") as pem:
            pem.write((self.pki / "server.pem").read_bytes() + b"\n" + (self.pki / "server.key").read_bytes())
        (d / "haproxy.cfg").write_text(f"""global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend tpps
  bind 127.0.0.1:{self.port} ssl crt {d / "edge.pem"} ca-file {(self.pki / "ca.pem").resolve()} verify optional \
alpn http/1.1 ciphers {FAPI_CIPHERS}
  http-request del-header Client-Cert
  http-request del-header Client-Cert-Chain
  http-request set-header Client-Cert :%[ssl_c_der,base64]: if {{ ssl_c_used }}
  default_backend gateway
backend gateway
  server gateway 127.0.0.1:{self.upstream}
""")
        return ["-db", "-f", str(d / "haproxy.cfg")]


def find_edge() -> tuple[type[Edge], str] | None:
    """(the edge, its binary): nginx with its njs module if installed, else HAProxy if installed, else None."""
    if (nginx := installed("nginx")) and NJS_MODULE.exists():
        return NginxEdge, nginx
    if haproxy := installed("haproxy"):
        return HAProxyEdge, haproxy
    return None
