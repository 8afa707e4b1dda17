"""The probes, /metrics, and the security team's /admin pages, as a small WSGI app on a daemon thread of the main
process (it outlives the workers, so it answers while they restart).

- /livez: the process serves (this thread answers). Restart the process only when this fails.
- /readyz: this node can take calls: its workers' event loops run (heartbeat.py: at least OBGW_WORKERS fresh) and
  Redis answers a PING. The bank's services are not asked: an outage there is answered by the breakers (503 per
  service), and taking every node out of the balancer for it would only make it total.
- /healthz: Redis and every back-end reachable (kept for the monitors that use it; 503 during a bank outage).

/admin needs the admin password (HTTP Basic, user `admin`, credentials.py) and nothing else opens it: the listener
knows no TPP certificate, token or customer session. /healthz and /metrics stay open to the (loopback) monitor.
/admin and /admin/records read the audit archive and the live stream as one log (as `obgw audit search`);
/admin/usage (usage_page.py) reads the meter and prices it on the plans the workers run.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from gateway import __version__
from gateway.admin import pages, usage_page
from gateway.admin.credentials import USER, basic_credentials, password_matches
from gateway.admin.guard import PasswordGuard, Verdict, names_this_listener
from gateway.admin.heartbeat import serving_workers
from gateway.audit.archive import ArchivedLog, ArchiveError
from gateway.policy.model import Plans
from gateway.store.audit import AuditReader
from gateway.store.redis import RedisError, sync_client


def _tcp_reachable(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


PAGE_HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                            "frame-ancestors 'none'"), ("X-Frame-Options", "DENY"),
                ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _NodeCollector:
    """What only the admin listener knows: the build, and how many workers serve of how many configured."""

    def __init__(self, app: AdminApp) -> None:
        self.app = app

    def collect(self):
        info = GaugeMetricFamily("obgw_build_info", "The running build: version and Python (always 1).",
                                 labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        if self.app.beats is not None:
            yield GaugeMetricFamily("obgw_workers_serving", "Workers whose event loop ran in the last few seconds.",
                                    value=serving_workers(self.app.beats))
            yield GaugeMetricFamily("obgw_workers_configured", "Workers this node is configured to run.",
                                    value=self.app.workers)


class _Unavailable(Exception):
    """A page this listener cannot serve as configured (503 with this message)."""


class AdminApp:
    def __init__(self, redis_url: str, service_urls: Mapping[str, str], password_file: Path | None = None,
                 guard: PasswordGuard | None = None, *, workers: int = 1, beats: Path | None = None,
                 archive: Path | None = None, plans: Plans | None = None) -> None:
        """`beats`: the directory of the workers' heartbeat files (heartbeat.py); None: /readyz asks Redis only.
        `archive`: the audit archive directory (Settings.audit_archive_path); None: the pages read the live stream
        only. `plans`: the policy's price plans; None: /admin/usage answers 503."""
        self._redis = sync_client(redis_url)
        self._services = dict(service_urls)
        self._password_file = password_file
        self._guard = guard or PasswordGuard()
        self.listener_host = "localhost"  # the name it was configured with (start_admin)
        self.workers, self.beats = workers, beats
        self._archive, self._plans = archive, plans
        self._node = _NodeCollector(self)

    def set_services(self, service_urls: Mapping[str, str]) -> None:
        """After a reload: the services /healthz asks about."""
        self._services = dict(service_urls)

    def set_plans(self, plans: Plans) -> None:
        """After a reload: the plans /admin/usage prices on."""
        self._plans = plans

    def _audit_log(self) -> ArchivedLog | AuditReader:
        live = AuditReader(self._redis)
        return ArchivedLog(live, self._archive) if self._archive is not None else live

    def _redis_answers(self) -> bool:
        try:
            return bool(self._redis.ping())
        except RedisError:
            return False

    def ready(self) -> tuple[bool, dict]:
        serving = serving_workers(self.beats) if self.beats is not None else self.workers
        redis_ok = self._redis_answers()
        ready = redis_ok and serving >= self.workers
        return ready, {"status": "ready" if ready else "not ready", "redis": "ok" if redis_ok else "unreachable",
                       "workers": {"serving": serving, "configured": self.workers}}

    def health(self) -> tuple[bool, dict]:
        redis_ok = self._redis_answers()
        services = {name: "ok" if _tcp_reachable(url) else "unreachable" for name, url in self._services.items()}
        healthy = redis_ok and all(v == "ok" for v in services.values())
        return healthy, {"status": "ok" if healthy else "unhealthy", "redis": "ok" if redis_ok else "unreachable",
                         "services": services}

    def metrics(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            _forget_dead_workers(Path(directory))
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self._node)
            return generate_latest(registry)
        return generate_latest(REGISTRY) + generate_latest(_single(self._node))

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        host = environ.get("HTTP_HOST")
        if host is not None and not names_this_listener(host, self.listener_host):
            start_response("421 Misdirected Request", [("Content-Type", "text/plain"), ("Cache-Control", "no-store")])
            return [b"this listener does not answer for that host name\n"]
        if path == "/livez":
            start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps({"status": "live", "pid": os.getpid()}).encode()]
        if path in ("/readyz", "/healthz"):
            ok, body = self.ready() if path == "/readyz" else self.health()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps(body).encode()]
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [self.metrics()]
        if path in ("/admin", "/admin/records", "/admin/usage"):
            return self._page(path, environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]


    def _page(self, path: str, environ, start_response):
        stored = self._stored_password()
        if stored is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Cache-Control", "no-store")])
            return [b"no admin password is set: run `obgw admin password`\n"]
        given = basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        verdict = self._guard.check(lambda: password_matches(stored, given[1])) if given and given[0] == USER \
            else Verdict.WRONG
        if verdict is Verdict.LOCKED or verdict is Verdict.BUSY:
            retry = str(self._guard.retry_after()) if verdict is Verdict.LOCKED else "1"
            start_response("429 Too Many Requests" if verdict is Verdict.LOCKED else "503 Service Unavailable",
                           [("Retry-After", retry), ("Content-Type", "text/plain"), ("Cache-Control", "no-store")])
            return [b"too many wrong passwords: try again later\n" if verdict is Verdict.LOCKED
                    else b"busy checking other passwords: try again shortly\n"]
        if verdict is not Verdict.RIGHT:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="obgw admin", charset="UTF-8"'),
                                                ("Content-Type", "text/plain"), ("Cache-Control", "no-store")])
            return [b"the admin password is needed\n"]
        if environ.get("REQUEST_METHOD") != "GET":
            start_response("405 Method Not Allowed", [("Allow", "GET"), ("Content-Type", "text/plain")])
            return [b"GET only\n"]
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            body = self._render(path, params)
        except pages.BadParameter as exc:
            return _text(start_response, "400 Bad Request", str(exc))
        except RedisError:
            return _text(start_response, "503 Service Unavailable", "Redis is unreachable: the page cannot be read")
        except (ArchiveError, OSError) as exc:
            return _text(start_response, "503 Service Unavailable", f"the audit archive cannot be read: {exc}")
        except _Unavailable as exc:
            return _text(start_response, "503 Service Unavailable", str(exc))
        start_response("200 OK", list(PAGE_HEADERS))  # wsgiref adds Content-Length to the list it is given
        return [body.encode()]

    def _render(self, path: str, params: dict[str, str]) -> str:
        if path == "/admin":
            return pages.overview(self._audit_log())
        if path == "/admin/records":
            return pages.records(self._audit_log(), params)
        if self._plans is None:
            raise _Unavailable("this listener was started without the price plans: no usage page")
        return usage_page.page(self._redis, self._plans, params)

    def _stored_password(self) -> str | None:
        try:
            return self._password_file.read_text() if self._password_file else None
        except OSError:
            return None


def _text(start_response, status: str, message: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
    return [f"{message}\n".encode()]


def _single(collector: _NodeCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def _forget_dead_workers(directory: Path) -> None:
    """The live* gauges (breaker state) of workers that are gone (a crash, a reload) are dropped, not shown."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(directory))


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def start_admin(host: str, port: int, app: AdminApp) -> WSGIServer:
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    app.listener_host = host
    threading.Thread(target=server.serve_forever, name="obgw-admin", daemon=True).start()
    return server
