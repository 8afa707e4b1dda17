"""Running the gateway: TLS, worker processes, and the client certificate in the ASGI scope.

Released uvicorn does not implement the ASGI TLS extension, so `ClientCertProtocol` reads the verified peer
certificate from the connection's `ssl_object` once per connection and puts it where the ASGI spec says:
`scope["extensions"]["tls"]["client_cert_chain"]` (PEM, leaf first). Nothing downstream knows how it got there.

The handshake *asks* for a client certificate but does not require one (browsers share this listener); when one is
presented it must chain to the trusted CA and be in date, or the handshake fails. Each TPP-facing endpoint then
refuses a request without one (RequireClientCertificate).
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import ssl
import sys
from http import HTTPStatus

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from gateway import __version__, logs
from gateway.admin.heartbeat import beats_dir
from gateway.admin.server import AdminApp, start_admin
from gateway.app import SUPERVISOR_PID
from gateway.audit.key_files import AuditKeyError, load_pseudonym_key, load_signing_key
from gateway.consents.legacy import seal_at_start
from gateway.listener import tcp_listener
from gateway.oauth.signing_keys import KeyEncryptionError, KeyEncryptionKey, open_all
from gateway.pipeline.middleware import PARSER_REFUSAL
from gateway.policy import PolicyError, load_policy
from gateway.settings import Settings
from gateway.state import make_private
from gateway.store.embedded import EmbeddedRedis
from gateway.store.oauth import AuthorizationStore
from gateway.store.redis import RedisError, sync_client

# FAPI 1 Advanced §8.5: TLS 1.2 only with these suites (TLS 1.3 suites are all acceptable and not set here).
FAPI_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
])


def _tls_extension(ssl_object: ssl.SSLObject | None) -> dict | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


class _WithTLS:
    """The app as seen by one connection: every request on it carries the connection's TLS facts."""

    __slots__ = ("app", "tls")

    def __init__(self, app, tls: dict) -> None:
        self.app, self.tls = app, tls

    async def __call__(self, scope, receive, send) -> None:
        scope["extensions"] = {**scope.get("extensions", {}), "tls": self.tls}
        await self.app(scope, receive, send)


MAX_HEADER_BYTES = 32 * 1024   # one request's header names and values: a TPP's, bearer token included, is ~2 KB
MAX_HEADER_FIELDS = 100


class _HeadersTooLarge(Exception):
    """Raised from the parser's header callback: httptools turns it into the parse error uvicorn answers."""


class ClientCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus: the client certificate in the scope, a bound on request headers, and
    requests the parser refuses answered through the app (the standard body, an interaction id, an audit record)
    rather than with uvicorn's bare text 400."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._refusal: str | None = None
        tls = _tls_extension(transport.get_extra_info("ssl_object"))
        if tls is not None:
            self.app = _WithTLS(self.app, tls)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self.headers) >= MAX_HEADER_FIELDS:
            self._refusal = "request.headers_too_large"
            raise _HeadersTooLarge
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        reason, self._refusal = self._refusal or "request.malformed", None
        self.transport.pause_reading()  # nothing more is read from a connection that is answered and closed
        scope: dict[str, object] = {
                 "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
                 "path": "", "raw_path": b"", "query_string": b"", "root_path": "", "headers": [],
                 "client": self.client, "server": self.server, PARSER_REFUSAL: reason}
        self.loop.create_task(self._answer_refusal(scope))

    async def _answer_refusal(self, scope: dict) -> None:
        answer: list[bytes] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                answer.append(b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()))
                answer.extend(b"%s: %s\r\n" % (k, v) for k, v in message.get("headers", ()))
                answer.append(b"connection: close\r\n\r\n")
            else:
                answer.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        finally:
            if not self.transport.is_closing():
                self.transport.write(b"".join(answer))
                self.transport.close()


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    tls = not settings.plain_http  # plain: an edge on this host terminates TLS (check_tls)
    return uvicorn.Config(
        "gateway.app:create_app_from_env", factory=True, host=settings.host, port=settings.port,
        workers=settings.workers, http="gateway.server:ClientCertProtocol", ws="none", lifespan="on",
        log_level="warning" if settings.log_level in ("debug", "info") else settings.log_level,
        log_config=logs.dict_config(settings.log_level),  # applied in the main process and again in each worker
        access_log=False, proxy_headers=False, server_header=False, date_header=True,
        ssl_certfile=str(settings.tls_cert) if tls else None, ssl_keyfile=str(settings.tls_key) if tls else None,
        ssl_ca_certs=str(settings.client_ca) if tls else None, ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_ciphers=FAPI_CIPHERS, timeout_graceful_shutdown=10,
    )


class StartError(Exception):
    """The gateway cannot start; the message says why and what to do."""


def check_tls(settings: Settings) -> None:
    """Load the TLS files once in the main process, so a bad file stops the start instead of every worker. A plain
    listener (OBGW_PLAIN_HTTP) is only for an edge on this host: loopback, and only trusted proxies' certificates."""
    if settings.plain_http:
        if not ipaddress.ip_address(settings.host).is_loopback:
            raise StartError(f"OBGW_PLAIN_HTTP: {settings.host} is not a loopback address (plain HTTP only behind "
                             "an edge on this host)")
        if not settings.trusted_proxies:
            raise StartError("OBGW_PLAIN_HTTP needs OBGW_TRUSTED_PROXIES: the edge's address, whose RFC 9440 "
                             "Client-Cert is the only way a TPP is identified without TLS")
        if not settings.client_ca.exists():
            raise StartError(f"missing the client CA {settings.client_ca}: the edge's certificates are verified "
                             "against it")
        return
    missing = [str(p) for p in (settings.tls_cert, settings.tls_key, settings.client_ca) if not p.exists()]
    if missing:
        raise StartError(f"missing TLS files: {', '.join(missing)} (run `obgw certs init` for a dev PKI)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        context.load_verify_locations(settings.client_ca)
    except (ssl.SSLError, ValueError) as exc:
        raise StartError(f"cannot use the TLS files {settings.tls_cert}, {settings.tls_key}, "
                         f"{settings.client_ca}: {exc}") from None


def check_audit_keys(settings: Settings) -> None:
    """Read the audit keys once in the main process, so a missing one stops the start instead of every worker."""
    try:
        load_pseudonym_key(settings.audit_key_file)
        load_signing_key(settings.audit_signing_key_file)
    except AuditKeyError as exc:
        raise StartError(str(exc)) from None


def check_signing_keys(settings: Settings, kek: KeyEncryptionKey) -> None:
    """Once, in the main process: seal the signing keys an older version stored in clear, and open every stored key,
    so a wrong key-encryption key stops the start (naming its file) instead of failing each token request."""
    client = sync_client(settings.redis)
    try:
        sealed = open_all(AuthorizationStore(client), kek)
    except KeyEncryptionError as exc:
        raise StartError(str(exc)) from None
    except RedisError as exc:
        raise StartError(f"cannot reach Redis to read the signing keys: {exc}") from None
    finally:
        client.close()
    if sealed:
        print(f"obgw: sealed {len(sealed)} signing key(s) stored in clear by an older version", file=sys.stderr)


log = logging.getLogger("obgw")


class Supervisor(Multiprocess):
    """uvicorn's supervisor, with SIGHUP checked first: the policies and TLS files are read in this process, and
    only if they load are the workers replaced, one by one, each new one serving before the old one is told to stop
    (uvicorn's rolling restart). The listening socket stays open throughout, an old worker finishes the calls it has
    (graceful shutdown, up to timeout_graceful_shutdown) and answers them with `Connection: close`; new workers read
    the policy and the certificate afresh. A policy or certificate that does not load changes nothing (logged)."""

    def __init__(self, config: uvicorn.Config, sockets, settings: Settings, admin: AdminApp) -> None:
        super().__init__(config, sockets)
        self.settings, self.admin = settings, admin

    def handle_hup(self) -> None:
        try:
            policy = load_policy(self.settings.policy_dir, self.settings.service_urls)
            check_tls(self.settings)
        except (PolicyError, StartError) as exc:
            logs.event(log, logging.ERROR, "reload refused: nothing changed", error=str(exc))
            return
        before = [p.pid for p in self.processes]
        logs.event(log, logging.INFO, "reload", stage="started", workers=before)
        self.admin.set_services({n: s.url for n, s in policy.services.items()})
        self.admin.set_plans(policy.plans)
        self.restart_all()
        after = [p.pid for p in self.processes]
        logs.event(log, logging.INFO if not set(after) & set(before) else logging.WARNING, "reload",
                   stage="done" if not set(after) & set(before) else "incomplete", workers=after)


def serve(settings: Settings, on_ready=None, *, embedded_redis: bool = False) -> int:
    """Validate, start Redis if embedded (only when asked: `embedded_redis`), bind, start the admin listener and the
    workers; return when stopped."""
    logs.configure(settings.log_level)
    try:
        policy = load_policy(settings.policy_dir, settings.service_urls)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    check_tls(settings)
    check_audit_keys(settings)
    try:
        kek = KeyEncryptionKey.load(settings.key_encryption_key_file)
    except KeyEncryptionError as exc:
        raise StartError(str(exc)) from None
    if not settings.redis_url and not embedded_redis:
        # A gateway that quietly started a private Redis on a second host would split every consent and limit.
        raise StartError("REDIS_URL is not set: point it at the Redis every gateway process shares, or pass "
                         f"--embedded-redis for a private one under {settings.var_dir / 'redis'} (one host only)")
    make_private(settings.var_dir)  # before the embedded Redis or a worker writes anything there
    with contextlib.ExitStack() as stack:
        if not settings.redis_url:
            embedded = stack.enter_context(EmbeddedRedis(settings.var_dir / "redis"))
            settings = settings.replace(redis_url=embedded.url)
        seal_at_start(settings)  # customer ids an older version stored in clear (issue 14 item 5), before workers
        check_signing_keys(settings, kek)
        metrics_dir = settings.var_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ.update(settings.to_environ())
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
        os.environ[SUPERVISOR_PID] = str(os.getpid())
        beats = beats_dir(settings.var_dir)
        shutil.rmtree(beats, ignore_errors=True)  # a worker of an earlier run is no worker of this one
        admin_app = AdminApp(settings.redis, {n: s.url for n, s in policy.services.items()},
                             settings.admin_password_path, workers=settings.workers, beats=beats,
                             archive=settings.audit_archive_path, plans=policy.plans)
        admin = start_admin(settings.admin_host, settings.admin_port, admin_app)
        stack.callback(admin.shutdown)
        config = uvicorn_config(settings)
        sock = tcp_listener(settings.host, settings.port)
        stack.callback(sock.close)
        if on_ready:
            on_ready(settings, sock.getsockname()[1], admin.server_address[1])
        logs.event(log, logging.INFO, "startup", listener=f"{settings.host}:{sock.getsockname()[1]}",
                   admin=f"{settings.admin_host}:{admin.server_address[1]}", workers=settings.workers,
                   version=__version__, pid=os.getpid())
        Supervisor(config, [sock], settings, admin_app).run()
        logs.event(log, logging.INFO, "shutdown", pid=os.getpid())
    return 0
