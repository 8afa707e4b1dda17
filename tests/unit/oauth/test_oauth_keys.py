"""The signing key ring: which key signs, how long a retired key verifies, what the JWKS shows, and rotation."""
from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm

from gateway.oauth.keys import ALGORITHM, KeyRing, SigningKeys, new_key_record, rotate

NOW = 1_800_000_000.0
OVERLAP = 600.0


def _record(created: float, retired_at: float | None = None) -> tuple[str, dict]:
    kid, record = new_key_record(created)
    return kid, record | {"retired_at": retired_at}


def _rfc7638(jwk: dict) -> str:
    """RFC 7638 §3, written out independently: SHA-256 of the required EC members, lexicographic, no whitespace."""
    canonical = '{"crv":"%s","kty":"%s","x":"%s","y":"%s"}' % (jwk["crv"], jwk["kty"], jwk["x"], jwk["y"])
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class _KeyStore:
    """The two calls `rotate` makes of the authorization-server store (a Redis hash in production)."""

    def __init__(self, records: dict[str, dict] | None = None) -> None:
        self.records = {kid: dict(r) for kid, r in (records or {}).items()}

    def signing_keys(self) -> dict[str, dict]:
        return json.loads(json.dumps(self.records))  # a copy, as read from Redis

    def update_signing_keys(self, updated: dict[str, dict], removed: list[str]) -> None:
        self.records |= updated
        for kid in removed:
            del self.records[kid]

    def add_signing_key(self, kid: str, record: dict, *, only_if_none: bool = False) -> bool:
        if only_if_none and self.records:
            return False
        self.records[kid] = record
        return True


def test_the_newest_key_that_is_not_retired_signs():
    old_kid, old = _record(NOW - 300)
    new_kid, new = _record(NOW - 200)
    retired_kid, retired = _record(NOW - 100, retired_at=NOW - 50)  # newest of all, but retired
    ring = KeyRing({old_kid: old, new_kid: new, retired_kid: retired}, OVERLAP, now=NOW)
    assert ring.signing.kid == new_kid
    assert set(ring.keys) == {old_kid, new_kid, retired_kid}


def test_a_ring_of_only_retired_keys_has_no_signing_key():
    kid, record = _record(NOW - 300, retired_at=NOW - 10)
    ring = KeyRing({kid: record}, OVERLAP, now=NOW)
    assert ring.signing is None
    assert ring.verification_key(kid) is not None


@pytest.mark.parametrize("since_retired", [0.0, OVERLAP - 1, OVERLAP])
def test_a_retired_key_verifies_until_its_overlap_ends(since_retired):
    kid, record = _record(NOW - 3600, retired_at=NOW)
    ring = KeyRing({kid: record}, OVERLAP, now=NOW + since_retired)
    assert ring.verification_key(kid) is not None
    assert [k["kid"] for k in ring.jwks()["keys"]] == [kid]


def test_a_retired_key_vanishes_once_its_overlap_is_over():
    kid, record = _record(NOW - 3600, retired_at=NOW)
    ring = KeyRing({kid: record}, OVERLAP, now=NOW + OVERLAP + 1)
    assert ring.verification_key(kid) is None
    assert ring.jwks() == {"keys": []}
    assert kid not in ring.keys


def test_an_unknown_kid_has_no_verification_key():
    kid, record = _record(NOW)
    assert KeyRing({kid: record}, OVERLAP, now=NOW).verification_key("not-" + kid) is None


def test_the_verification_key_is_the_public_half_of_the_signing_key():
    kid, record = _record(NOW)
    ring = KeyRing({kid: record}, OVERLAP, now=NOW)
    token = jwt.encode({"sub": "x"}, ring.signing.private, ALGORITHM)
    assert jwt.decode(token, ring.verification_key(kid), algorithms=[ALGORITHM]) == {"sub": "x"}


def test_the_jwks_lists_public_members_only_named_by_their_rfc7638_thumbprint():
    records = dict([_record(NOW - 100, retired_at=NOW - 10), _record(NOW)])
    jwks = KeyRing(records, OVERLAP, now=NOW).jwks()
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}  # no "d"
        assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", "P-256", "sig", "ES256")
        assert jwk["kid"] == _rfc7638(jwk)
    assert [k["kid"] for k in jwks["keys"]] == sorted(records, key=lambda kid: -records[kid]["created"])


def test_a_new_key_record_is_named_by_the_thumbprint_of_its_public_key():
    kid, record = new_key_record(NOW)
    private = serialization.load_pem_private_key(record["private_pem"].encode(), password=None)
    public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    assert kid == record["kid"] == _rfc7638(public_jwk)
    assert (record["alg"], record["created"], record["retired_at"]) == ("ES256", NOW, None)


def test_rotate_retires_the_signing_key_adds_a_new_one_and_drops_keys_past_their_overlap():
    current_kid, current = _record(NOW - 5000)
    recent_kid, recent = _record(NOW - 9000, retired_at=NOW - 100)   # still inside its overlap: kept as is
    stale_kid, stale = _record(NOW - 9000, retired_at=NOW - 700)     # past its overlap: dropped
    store = _KeyStore({current_kid: current, recent_kid: recent, stale_kid: stale})

    new_kid, dropped = rotate(store, OVERLAP, now=NOW)

    assert dropped == [stale_kid]
    assert set(store.records) == {current_kid, recent_kid, new_kid}
    assert store.records[current_kid]["retired_at"] == NOW
    assert store.records[current_kid]["private_pem"] == current["private_pem"]
    assert store.records[recent_kid] == recent
    assert (store.records[new_kid]["created"], store.records[new_kid]["retired_at"]) == (NOW, None)
    assert new_kid not in (current_kid, recent_kid, stale_kid)
    assert KeyRing(store.signing_keys(), OVERLAP, now=NOW + 1).signing.kid == new_kid


def test_a_token_signed_before_a_rotation_still_verifies_after_it():
    kid, record = _record(NOW - 60)
    store = _KeyStore({kid: record})
    before = KeyRing(store.signing_keys(), OVERLAP, now=NOW)
    token = jwt.encode({"sub": "cust-1"}, before.signing.private, ALGORITHM, headers={"kid": before.signing.kid})

    new_kid, _ = rotate(store, OVERLAP, now=NOW)
    after = KeyRing(store.signing_keys(), OVERLAP, now=NOW + OVERLAP - 1)

    assert after.signing.kid == new_kid != kid
    old_kid = jwt.get_unverified_header(token)["kid"]
    assert jwt.decode(token, after.verification_key(old_kid), algorithms=[ALGORITHM]) == {"sub": "cust-1"}
    assert {k["kid"] for k in after.jwks()["keys"]} == {kid, new_kid}
    # ... until the overlap is over.
    assert KeyRing(store.signing_keys(), OVERLAP, now=NOW + OVERLAP + 1).verification_key(old_kid) is None


def test_signing_keys_makes_the_first_key_on_first_use():
    store = _KeyStore()
    ring = SigningKeys(store, OVERLAP).ring()
    assert list(store.records) == [ring.signing.kid]


def test_a_key_retired_longer_than_the_overlap_stops_verifying_even_in_an_old_ring():
    kid, record = new_key_record(now=1_000.0)
    ring = KeyRing({kid: record | {"retired_at": 2_000.0}}, overlap=600, now=2_100.0)
    assert ring.verification_key(kid, now=2_500.0) is not None   # within the overlap
    assert ring.verification_key(kid, now=2_601.0) is None       # past it, though the ring still holds the key
