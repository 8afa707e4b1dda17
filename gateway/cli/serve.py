"""`obgw serve`: run the gateway (HTTPS listener, workers, admin listener) on the Redis REDIS_URL names; or, with
--embedded-redis, on a private redis-server it starts under VAR_DIR/redis (one host only, like `obgw demo`)."""
from __future__ import annotations

import argparse

from gateway.cli import CliError
from gateway.cli._settings import settings_from
from gateway.server import StartError, serve
from gateway.settings import SETTINGS, add_arguments
from gateway.store.embedded import EmbeddedRedisError


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the gateway", description=__doc__)
    add_arguments(p, tuple(s.name for s in SETTINGS))
    p.add_argument("--embedded-redis", action="store_true",
                   help="without REDIS_URL, start a private redis-server under VAR_DIR/redis (a laptop, one host: "
                        "gateways on other hosts would not share it)")
    p.set_defaults(func=run)


def _announce(settings, port: int, admin_port: int) -> None:
    print(f"obgw: gateway https://{settings.host}:{port}  admin http://{settings.admin_host}:{admin_port}  "
          f"workers {settings.workers}", flush=True)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        return serve(settings, on_ready=_announce, embedded_redis=args.embedded_redis)
    except (StartError, EmbeddedRedisError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot start: {exc}") from None
