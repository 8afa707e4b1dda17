"""/healthz (Redis and every back-end reachable) and /metrics, as a small WSGI app on a daemon thread.

It runs in the main process, which outlives the workers, so it answers even while workers restart.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Mapping
from socketserver import ThreadingMixIn
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess

from gateway.store.redis import RedisError, sync_client


def _tcp_reachable(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


class AdminApp:
    def __init__(self, redis_url: str, service_urls: Mapping[str, str]) -> None:
        self._redis = sync_client(redis_url)
        self._services = dict(service_urls)

    def health(self) -> tuple[bool, dict]:
        try:
            redis_ok = bool(self._redis.ping())
        except RedisError:
            redis_ok = False
        services = {name: "ok" if _tcp_reachable(url) else "unreachable" for name, url in self._services.items()}
        healthy = redis_ok and all(v == "ok" for v in services.values())
        return healthy, {"status": "ok" if healthy else "unhealthy", "redis": "ok" if redis_ok else "unreachable",
                         "services": services}

    @staticmethod
    def metrics() -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(REGISTRY)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            healthy, body = self.health()
            start_response("200 OK" if healthy else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps(body).encode()]
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [self.metrics()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def start_admin(host: str, port: int, app: AdminApp) -> WSGIServer:
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="obgw-admin", daemon=True).start()
    return server
