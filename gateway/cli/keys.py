"""`obgw keys list|rotate|revoke`: the token-signing keys (ES256), kept in Redis with their private halves encrypted
under the key-encryption key (OBGW_KEY_ENCRYPTION_KEY, a file never put in Redis). `rotate` signs with a new key and
keeps the old one verifying until its tokens expire; `revoke` ends a key at once (a leaked one): every token it
signed fails at its next call on every worker, and if it was the signing key a new one signs from then on."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from gateway.cli import CliError
from gateway.cli._operator import audited
from gateway.cli._settings import with_redis
from gateway.oauth import signing_keys
from gateway.oauth.server import KEY_OVERLAP_MARGIN
from gateway.settings import add_arguments
from gateway.store.oauth import AuthorizationStore

_SETTINGS = ("redis_url", "var_dir", "access_token_seconds", "client_ca", "key_encryption_key", "audit_signing_key")


def register(subparsers) -> None:
    p = subparsers.add_parser("keys", help="list, rotate or revoke the token-signing keys", description=__doc__)
    sub = p.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", help="the keys, newest first: kid, created, signing or retired")
    ls.set_defaults(func=list_keys)
    r = sub.add_parser("rotate", help="sign with a new key from now; the old one verifies until its tokens expire")
    r.set_defaults(func=rotate)
    v = sub.add_parser("revoke", help="end a key now: its tokens fail at their next call on every worker; a new key "
                                      "signs if it was the signing one")
    v.add_argument("kid", metavar="KID",
                   help="the key's id, as `obgw keys list` shows it (after `--` if it starts with `-`)")
    v.set_defaults(func=revoke)
    for parser in (ls, r, v):
        add_arguments(parser, _SETTINGS)


def _with_store(args, work, command: str | None = None, check=None):
    """Run `work(store, overlap, kek)` once any key stored in clear by an older version is sealed (and every stored
    key opens with the key-encryption key: a wrong one is an error naming its file); a `command` that changes the
    keys is audited first, once `check(store)` has found nothing wrong with its input."""
    def run(client, settings):
        store = AuthorizationStore(client)
        try:
            kek = signing_keys.KeyEncryptionKey.load(settings.key_encryption_key_file)
            signing_keys.open_all(store, kek)
        except signing_keys.KeyEncryptionError as exc:
            raise CliError(str(exc)) from None
        if check is not None:
            check(store)
        if command is not None:
            audited(settings, command)
        return work(store, settings.access_token_seconds + KEY_OVERLAP_MARGIN, kek)
    return with_redis(args, run)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def list_keys(args) -> int:
    def work(store, overlap, _kek) -> int:
        for kid, record in sorted(store.signing_keys().items(), key=lambda item: -item[1]["created"]):
            retired = record.get("retired_at")
            state = "signing" if retired is None else (
                f"retired, verifies until {_when(retired + overlap)}" if retired + overlap > time.time() else "expired")
            print(f"{kid}\t{record['alg']}\tcreated {_when(record['created'])}\t{state}")
        return 0
    return _with_store(args, work)


def rotate(args) -> int:
    def work(store, overlap, kek) -> int:
        kid, dropped = signing_keys.rotate(store, kek, overlap)
        print(f"signing with {kid} from now; previous keys verify for {overlap} s more"
              + (f"; dropped {', '.join(dropped)}" if dropped else ""))
        return 0
    return _with_store(args, work, "keys rotate")


def revoke(args) -> int:
    def known(store) -> None:
        if args.kid not in store.signing_keys():
            raise CliError(f"no signing key {args.kid} (`obgw keys list` shows the keys)")

    def work(store, overlap, kek) -> int:
        try:
            marked, new_kid = signing_keys.revoke(store, kek, args.kid, overlap)
        except KeyError:
            raise CliError(f"no signing key {args.kid} (`obgw keys list` shows the keys)") from None
        print(f"revoked {args.kid}: deleted, and its tokens refused from their next call on every worker "
              f"({marked} registered client{'s' if marked != 1 else ''} marked)"
              + (f"; signing with {new_kid} from now" if new_kid else ""))
        return 0
    return _with_store(args, work, "keys revoke", known)
