"""The signing key ring: which key signs, how long a retired key verifies, what the JWKS shows, and rotation."""
from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.oauth.signing_keys import (
    ALGORITHM,
    VERIFIER_RELOAD_SECONDS,
    KeyEncryptionError,
    KeyEncryptionKey,
    KeyRing,
    SigningKeys,
    new_key_record,
    open_all,
    revocation_seconds,
    revoke,
    rotate,
)

NOW = 1_800_000_000.0
OVERLAP = 600.0
KEK = KeyEncryptionKey(bytes(range(32)))


def _record(created: float, retired_at: float | None = None) -> tuple[str, dict]:
    kid, record = new_key_record(KEK, created)
    return kid, record | {"retired_at": retired_at}


def _rfc7638(jwk: dict) -> str:
    """RFC 7638 §3, written out independently: SHA-256 of the required EC members, lexicographic, no whitespace."""
    canonical = '{"crv":"%s","kty":"%s","x":"%s","y":"%s"}' % (jwk["crv"], jwk["kty"], jwk["x"], jwk["y"])
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class _KeyStore:
    """The calls `oauth.signing_keys` makes of the authorization-server store (a Redis hash in production)."""

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

    def replace_signing_key(self, kid: str, record: dict, replacement: dict) -> bool:
        if self.records.get(kid) != record:
            return False
        self.records[kid] = replacement
        return True

    def revoke_signing_key(self, kid: str, seconds: int, new: tuple[str, dict] | None) -> int:
        del self.records[kid]
        if new is not None:
            self.records[new[0]] = new[1]
        return 2


def test_the_newest_key_that_is_not_retired_signs():
    old_kid, old = _record(NOW - 300)
    new_kid, new = _record(NOW - 200)
    retired_kid, retired = _record(NOW - 100, retired_at=NOW - 50)  # newest of all, but retired
    ring = KeyRing({old_kid: old, new_kid: new, retired_kid: retired}, OVERLAP, now=NOW)
    assert ring.signing.kid == new_kid and ring.signing.private is None  # a verifier's ring opens no key
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
    assert ring.verification_key(kid, now=NOW + since_retired) is not None
    assert [k["kid"] for k in ring.jwks(now=NOW + since_retired)["keys"]] == [kid]


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
    ring = KeyRing({kid: record}, OVERLAP, now=NOW, kek=KEK)
    token = jwt.encode({"sub": "x"}, ring.signing.private, ALGORITHM)
    assert jwt.decode(token, ring.verification_key(kid), algorithms=[ALGORITHM]) == {"sub": "x"}


def test_the_jwks_lists_public_members_only_named_by_their_rfc7638_thumbprint():
    records = dict([_record(NOW - 100, retired_at=NOW - 10), _record(NOW)])
    jwks = KeyRing(records, OVERLAP, now=NOW).jwks(now=NOW)
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}  # no "d"
        assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", "P-256", "sig", "ES256")
        assert jwk["kid"] == _rfc7638(jwk)
    assert [k["kid"] for k in jwks["keys"]] == sorted(records, key=lambda kid: -records[kid]["created"])


def test_a_new_key_record_is_named_by_the_thumbprint_of_its_public_key():
    kid, record = new_key_record(KEK, NOW)
    private = KEK.open(kid, record["sealed_private_key"])
    public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    assert kid == record["kid"] == _rfc7638(public_jwk) == _rfc7638(record["public_jwk"])
    assert (record["alg"], record["created"], record["retired_at"]) == ("ES256", NOW, None)


def test_rotate_retires_the_signing_key_adds_a_new_one_and_drops_keys_past_their_overlap():
    current_kid, current = _record(NOW - 5000)
    recent_kid, recent = _record(NOW - 9000, retired_at=NOW - 100)   # still inside its overlap: kept as is
    stale_kid, stale = _record(NOW - 9000, retired_at=NOW - 700)     # past its overlap: dropped
    store = _KeyStore({current_kid: current, recent_kid: recent, stale_kid: stale})

    new_kid, dropped = rotate(store, KEK, OVERLAP, now=NOW)

    assert dropped == [stale_kid]
    assert set(store.records) == {current_kid, recent_kid, new_kid}
    assert store.records[current_kid]["retired_at"] == NOW
    assert store.records[current_kid]["sealed_private_key"] == current["sealed_private_key"]
    assert store.records[recent_kid] == recent
    assert (store.records[new_kid]["created"], store.records[new_kid]["retired_at"]) == (NOW, None)
    assert new_kid not in (current_kid, recent_kid, stale_kid)
    assert KeyRing(store.signing_keys(), OVERLAP, now=NOW + 1).signing.kid == new_kid


def test_a_token_signed_before_a_rotation_still_verifies_after_it():
    kid, record = _record(NOW - 60)
    store = _KeyStore({kid: record})
    before = KeyRing(store.signing_keys(), OVERLAP, now=NOW, kek=KEK)
    token = jwt.encode({"sub": "cust-1"}, before.signing.private, ALGORITHM, headers={"kid": before.signing.kid})

    new_kid, _ = rotate(store, KEK, OVERLAP, now=NOW)
    after = KeyRing(store.signing_keys(), OVERLAP, now=NOW + OVERLAP - 1)

    assert after.signing.kid == new_kid != kid
    old_kid = jwt.get_unverified_header(token)["kid"]
    key = after.verification_key(old_kid, now=NOW + OVERLAP - 1)
    assert jwt.decode(token, key, algorithms=[ALGORITHM]) == {"sub": "cust-1"}
    assert {k["kid"] for k in after.jwks(now=NOW + OVERLAP - 1)["keys"]} == {kid, new_kid}
    # ... until the overlap is over.
    assert KeyRing(store.signing_keys(), OVERLAP, now=NOW + OVERLAP + 1).verification_key(old_kid) is None


def test_signing_keys_makes_the_first_key_on_first_use():
    store = _KeyStore()
    ring = SigningKeys(store, OVERLAP, KEK).ring()
    assert list(store.records) == [ring.signing.kid]


def test_a_key_retired_longer_than_the_overlap_stops_verifying_even_in_an_old_ring():
    kid, record = new_key_record(KEK, now=1_000.0)
    ring = KeyRing({kid: record | {"retired_at": 2_000.0}}, overlap=600, now=2_100.0)
    assert ring.verification_key(kid, now=2_500.0) is not None   # within the overlap
    assert ring.verification_key(kid, now=2_601.0) is None       # past it, though the ring still holds the key


def test_a_key_record_holds_the_public_jwk_in_clear_and_no_private_key():
    kid, record = new_key_record(KEK, NOW)
    private = KEK.open(kid, record["sealed_private_key"])
    d = private.private_numbers().private_value.to_bytes(32, "big")
    stored = json.dumps(record)
    assert "PRIVATE KEY" not in stored and "private_pem" not in record
    for form in (base64.urlsafe_b64encode(d).rstrip(b"=").decode(), d.hex(), base64.b64encode(d).decode()):
        assert form not in stored
    assert set(record["public_jwk"]) == {"kty", "crv", "x", "y"}


def test_a_sealed_key_opens_only_with_its_key_encryption_key_and_under_its_own_kid(tmp_path):
    kid, record = new_key_record(KEK, NOW)
    other_kid, _ = new_key_record(KEK, NOW)
    wrong = tmp_path / "signing.kek"
    wrong.write_text(bytes(32).hex() + "\n")
    with pytest.raises(KeyEncryptionError, match=f"key-encryption key {wrong} does not open signing key {kid}"):
        KeyEncryptionKey.load(wrong).open(kid, record["sealed_private_key"])
    with pytest.raises(KeyEncryptionError):  # AES-GCM's associated data is the kid: no passing one key off as another
        KEK.open(other_kid, record["sealed_private_key"])


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the key-encryption key {path}: No such file or directory"),
    ("not hex\n", "{path}: the key-encryption key must be 32 bytes written as hex"),
    (bytes(16).hex(), "{path}: the key-encryption key must be 32 bytes written as hex"),
])
def test_an_unusable_key_encryption_key_file_is_named_in_the_error(tmp_path, content, message):
    path = tmp_path / "signing.kek"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyEncryptionError) as raised:
        KeyEncryptionKey.load(path)
    assert str(raised.value).startswith(message.format(path=path))


def _in_clear(created: float) -> tuple[str, dict]:
    """A key record as versions before the key-encryption key stored it: the private key as PEM, in clear."""
    private = ec.generate_private_key(ec.SECP256R1())
    kid = _rfc7638(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return kid, {"kid": kid, "alg": "ES256", "private_pem": pem, "created": created, "retired_at": None}


def test_a_key_stored_in_clear_by_an_older_version_is_sealed_in_place_on_first_load():
    kid, record = _in_clear(NOW - 60)
    old_token = jwt.encode({"sub": "x"}, serialization.load_pem_private_key(record["private_pem"].encode(), None),
                           ALGORITHM, headers={"kid": kid})
    store = _KeyStore({kid: record})

    ring = SigningKeys(store, OVERLAP, KEK).ring()

    assert ring.signing.kid == kid  # the same key goes on signing: tokens it signed stay good
    assert "private_pem" not in store.records[kid] and "PRIVATE KEY" not in json.dumps(store.records)
    assert KEK.open(kid, store.records[kid]["sealed_private_key"]).private_numbers() == \
        ring.signing.private.private_numbers()
    assert jwt.decode(old_token, ring.verification_key(kid), algorithms=[ALGORITHM]) == {"sub": "x"}


def test_sealing_never_brings_back_a_key_changed_meanwhile():
    kid, record = _in_clear(NOW - 60)
    store = _KeyStore({kid: record | {"retired_at": NOW}})  # rotated after the sealer read it
    assert not store.replace_signing_key(kid, record, {"sealed": True})
    assert open_all(store, KEK) == [kid] and store.records[kid]["retired_at"] == NOW


def test_revoking_the_signing_key_deletes_it_and_a_new_key_signs():
    kid, record = _record(NOW - 60)
    store = _KeyStore({kid: record})
    marked, new_kid = revoke(store, KEK, kid, OVERLAP)
    assert (marked, list(store.records)) == (2, [new_kid]) and new_kid != kid
    assert SigningKeys(store, OVERLAP, KEK).ring().signing.kid == new_kid


def test_revoking_a_retired_key_leaves_the_signing_key_signing_and_an_unknown_kid_is_refused():
    retired_kid, retired = _record(NOW - 600, retired_at=NOW - 60)
    signing_kid, signing = _record(NOW - 60)
    store = _KeyStore({retired_kid: retired, signing_kid: signing})
    assert revoke(store, KEK, retired_kid, OVERLAP) == (2, None)
    assert list(store.records) == [signing_kid]
    with pytest.raises(KeyError):
        revoke(store, KEK, "no-such-kid", OVERLAP)


def test_a_revoked_keys_markers_outlive_every_token_and_cache_that_could_still_accept_it():
    # Tokens verified before the revocation live at most the overlap; workers re-read the keys within a minute.
    assert revocation_seconds(OVERLAP) > OVERLAP + VERIFIER_RELOAD_SECONDS
