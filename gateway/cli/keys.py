"""`obgw keys list|rotate`: the token-signing keys (ES256), kept in Redis; rotation keeps the old key verifying."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from gateway.cli._settings import with_redis
from gateway.oauth import keys
from gateway.oauth.server import KEY_OVERLAP_MARGIN
from gateway.settings import add_arguments
from gateway.store.oauth import AuthorizationStore

_SETTINGS = ("redis_url", "var_dir", "access_token_seconds")


def register(subparsers) -> None:
    p = subparsers.add_parser("keys", help="list or rotate the token-signing keys", description=__doc__)
    sub = p.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", help="the keys, newest first: kid, created, signing or retired")
    ls.set_defaults(func=list_keys)
    r = sub.add_parser("rotate", help="sign with a new key from now; the old one verifies until its tokens expire")
    r.set_defaults(func=rotate)
    for parser in (ls, r):
        add_arguments(parser, _SETTINGS)


def _with_store(args, work):
    return with_redis(args, lambda client, settings: work(
        AuthorizationStore(client), settings.access_token_seconds + KEY_OVERLAP_MARGIN))


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def list_keys(args) -> int:
    def work(store, overlap) -> int:
        for kid, record in sorted(store.signing_keys().items(), key=lambda item: -item[1]["created"]):
            retired = record.get("retired_at")
            state = "signing" if retired is None else (
                f"retired, verifies until {_when(retired + overlap)}" if retired + overlap > time.time() else "expired")
            print(f"{kid}\t{record['alg']}\tcreated {_when(record['created'])}\t{state}")
        return 0
    return _with_store(args, work)


def rotate(args) -> int:
    def work(store, overlap) -> int:
        kid, dropped = keys.rotate(store, overlap)
        print(f"signing with {kid} from now; previous keys verify for {overlap} s more"
              + (f"; dropped {', '.join(dropped)}" if dropped else ""))
        return 0
    return _with_store(args, work)
