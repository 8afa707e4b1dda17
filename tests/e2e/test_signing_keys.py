"""The token-signing keys at rest and under attack, against `obgw serve --workers 2` and the sandbox bank: no private
key in clear in Redis or its append-only file, a token minted with the real key refused when it lives too long,
`obgw keys revoke` ending a key at once - its tokens fail at their next call on every worker (CONTRACT §4) - and a
missing or wrong key-encryption key stopping the start."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
import redis
from support.faults import wait_until
from support.gateway import bank_gateway, gateway_env
from support.ports import free_port
from support.processes import ROOT
from support.rotation import until_every_worker_takes_the_new_key
from support.tpp import ACCOUNTS, CONSENTS, CUSTOMER_PRESENT, Tpp
from support.workers import on_every_worker

from gateway.crypto import pseudonym
from gateway.oauth.signing_keys import KeyEncryptionKey, new_key_record
from gateway.store.names import PSEUDONYM_SECRET, SIGNING_KEYS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, bank, workers=2)
    yield gw
    assert gw.stop() == 0


@pytest.fixture
def tpp(gateway, pki):
    client = Tpp(gateway.base, pki, "tpp-demo")
    yield client
    client.close()


def _everything_in(client: redis.Redis) -> bytes:
    """Every value Redis holds, read by type (a DUMP may be compressed, hiding what it holds)."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key))
        elif kind == b"hash":
            parts += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"set":
            parts += client.smembers(key)
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"stream":
            parts += [b for _, fields in client.xrange(key) for pair in fields.items() for b in pair]
        parts.append(key)
    return b"\n".join(p for p in parts if p)


def _forms_of(private) -> list[bytes]:
    """The private scalar d as any dump could spell it: raw, hex, base64url (JWK), base64 (inside a PEM's DER)."""
    d = private.private_numbers().private_value.to_bytes(32, "big")
    return [d, d.hex().encode(), base64.urlsafe_b64encode(d).rstrip(b"="), base64.b64encode(d)[:40]]


def _holding(directory: Path, kids: list[str]) -> bytes | None:
    """What the files of `directory` hold, once it names every kid."""
    written = b"".join(p.read_bytes() for p in directory.iterdir())
    return written if all(kid.encode() in written for kid in kids) else None


def test_no_signing_key_is_in_clear_in_redis_or_its_append_only_file(gateway, tpp):
    tpp.consent_token(["ReadAccountsBasic"])  # a key signs tokens, id_tokens and a refresh token
    assert gateway.cli("keys", "rotate").returncode == 0
    until_every_worker_takes_the_new_key(gateway, tpp)  # the new key signs too
    client = redis.Redis.from_url(gateway.redis_url)
    try:
        kids = [kid.decode() for kid in client.hkeys(SIGNING_KEYS)]
        everything = _everything_in(client)
    finally:
        client.close()
    assert len(kids) == 2
    # appendfsync everysec: the file holds the writes within about a second; wait until it has both keys' records.
    aof = wait_until(lambda: _holding(Path(gateway.env["OBGW_VAR_DIR"]) / "redis" / "appendonlydir", kids), 10,
                     "both signing keys in the append-only file")
    for dump in (everything, aof):
        assert b"PRIVATE KEY" not in dump and b"private_pem" not in dump
        for kid in kids:
            for form in _forms_of(gateway.signing_key(kid)):  # opened with the key-encryption key, outside Redis
                assert form not in dump


def test_the_token_subjects_secret_is_sealed_in_redis(gateway, tpp, pki):
    # Whoever reads Redis alone cannot test a guessed customer id against an id_token's (or a code's) `sub`.
    token = tpp.consent_token(["ReadAccountsBasic"])
    sub = jwt.decode(token["id_token"], options={"verify_signature": False})["sub"]
    client = redis.Redis.from_url(gateway.redis_url)
    try:
        stored = client.get(PSEUDONYM_SECRET)
    finally:
        client.close()
    assert stored and pseudonym(stored, "alice") != sub
    secret = KeyEncryptionKey.load(pki / "signing.kek").open_bytes("token subjects", stored.decode())
    assert pseudonym(secret, "alice") == sub  # the key-encryption key, outside Redis, opens it


def test_a_token_signed_with_the_real_key_but_living_longer_than_configured_is_refused(gateway, tpp):
    token = tpp.consent_token(["ReadAccountsBasic"])
    header = jwt.get_unverified_header(token["access_token"])
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    now = int(time.time())
    forged = jwt.encode(claims | {"iat": now, "nbf": now, "exp": now + 10 * 365 * 86_400},
                        gateway.signing_key(header["kid"]), "ES256", headers=header)
    answer = tpp.get(ACCOUNTS, forged)
    assert answer.status_code == 401 and answer.json()["Errors"][0]["ErrorCode"] == "UK.OBIE.Header.Invalid"
    [record] = [r for r in gateway.audit() if r["interaction_id"] == answer.headers["x-fapi-interaction-id"]]
    assert record["reason"] == "token.too_long_lived"
    assert tpp.get(ACCOUNTS, token).status_code == 200  # the real token, same key, same claims but exp: fine


def _fresh_call(tpp: Tpp, path: str, access_token: str) -> httpx.Response:
    """A call on a new connection (the two workers share the listening socket: a new one may reach either)."""
    with httpx.Client(verify=tpp.context, timeout=15) as http:
        return http.get(tpp.base + path, headers={"Authorization": f"Bearer {access_token}", **CUSTOMER_PRESENT})


def _fresh_calls(tpp: Tpp, path: str, access_token: str, count: int) -> list[httpx.Response]:
    return [_fresh_call(tpp, path, access_token) for _ in range(count)]


def _on_both_workers(gateway, tpp: Tpp, path: str, access_token: str) -> tuple[list[httpx.Response], set]:
    """(the answers, the reasons audited) of calls made until both worker processes have answered."""
    answers, records = on_every_worker(gateway, lambda: _fresh_call(tpp, path, access_token))
    assert len(records) == len(answers)
    return answers, {r.get("reason") for r in records}


def test_keys_revoke_stops_every_token_the_key_signed_at_its_next_call_on_every_worker(gateway, tpp):
    consent_token = tpp.consent_token(["ReadAccountsBasic"])
    client_token = tpp.client_credentials()
    kid = jwt.get_unverified_header(consent_token["access_token"])["kid"]
    consent_path = f"{CONSENTS}/{consent_token['consent_id']}"
    before, _ = _on_both_workers(gateway, tpp, ACCOUNTS, consent_token["access_token"])
    assert {a.status_code for a in before} == {200}  # both workers have verified and cached the token
    assert {a.status_code for a in _fresh_calls(tpp, consent_path, client_token["access_token"], 4)} == {200}

    done = gateway.cli("keys", "revoke", "--", kid)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"revoked {kid}: deleted, and its tokens refused from their next call")
    after, reasons = _on_both_workers(gateway, tpp, ACCOUNTS, consent_token["access_token"])
    assert {a.status_code for a in after} == {401}
    assert {a.headers["www-authenticate"] for a in after} == {'Bearer error="invalid_token"'}
    assert reasons == {"token.key_revoked"}  # on both workers, from the very first call after it
    assert {a.status_code for a in _fresh_calls(tpp, consent_path, client_token["access_token"], 4)} == {401}
    # The authorization server agrees at once, and never signs with the revoked key again.
    introspected = tpp.post_form("introspection_endpoint", {"token": consent_token["access_token"]})
    assert introspected.status_code == 200 and introspected.json() == {"active": False}
    fresh = tpp.client_credentials()
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] != kid
    assert {a.status_code for a in _fresh_calls(tpp, consent_path, fresh["access_token"], 4)} == {200}
    assert kid not in {k["kid"] for k in tpp.http.get(tpp.metadata["jwks_uri"]).json()["keys"]}
    # A key that no longer exists cannot be revoked again: the command says so.
    again = gateway.cli("keys", "revoke", "--", kid)
    assert again.returncode == 2 and again.stderr == f"obgw: no signing key {kid} (`obgw keys list` shows the keys)\n"


@pytest.mark.parametrize("kek", ["missing", "wrong"])
def test_a_missing_or_wrong_key_encryption_key_stops_the_start_naming_its_file(tmp_path, pki, redis_url, kek):
    client = redis.Redis.from_url(redis_url)
    kid, record = new_key_record(KeyEncryptionKey.load(pki / "signing.kek"))  # stored by a gateway with the real one
    client.hset(SIGNING_KEYS, kid, json.dumps(record))
    client.close()
    path = tmp_path / "signing.kek"
    if kek == "wrong":
        path.write_text(bytes(32).hex() + "\n")
    env = gateway_env(tmp_path / "var", pki, ROOT / "policies", REDIS_URL=redis_url, OBGW_PORT=str(free_port()),
                      OBGW_KEY_ENCRYPTION_KEY=str(path))
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"obgw: cannot read the key-encryption key {path}: No such file or directory"
                                  if kek == "missing" else
                                  f"obgw: the key-encryption key {path} does not open signing key {kid}")
