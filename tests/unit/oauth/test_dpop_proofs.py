"""DPoP proofs (RFC 9449 §4.3) as a client library (joserfc) makes them: accepted exactly when every check holds."""
from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.oauth.dpop import Nonces, ProofError, access_token_hash, check_proof

URL = "https://127.0.0.1:8443/open-banking/v3.1/aisp/accounts"
NOW = 1_800_000_000.0
EC = ECKey.generate_key("P-256")
RSA = RSAKey.generate_key(2048)
NONCES = Nonces(b"k" * 32)


def proof(key=EC, alg: str = "ES256", header: dict | None = None, **claims) -> str:
    body = {"jti": "j-1", "htm": "GET", "htu": URL, "iat": int(NOW), **claims}
    body = {k: v for k, v in body.items() if v is not None}
    head = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False), **(header or {})}
    return jwt.encode(head, body, key, algorithms=[alg])


@pytest.mark.parametrize("key, alg", [(EC, "ES256"), (RSA, "PS256")])
def test_a_good_proof_names_its_keys_thumbprint(key, alg):
    checked = check_proof(proof(key, alg), "GET", URL, now=NOW)
    assert (checked.jkt, checked.jti) == (key.thumbprint(), "j-1")


def test_a_resource_calls_proof_carries_the_hash_of_its_access_token():
    assert check_proof(proof(ath=access_token_hash("tok")), "GET", URL, access_token="tok", now=NOW)
    for ath in (None, access_token_hash("another")):
        with pytest.raises(ProofError):
            check_proof(proof(ath=ath), "GET", URL, access_token="tok", now=NOW)


@pytest.mark.parametrize("made", [
    lambda: proof(header={"typ": "JWT"}),
    lambda: proof(header={"jwk": EC.as_dict(private=True)}),            # a private key in the header
    lambda: proof(header={"jwk": ECKey.generate_key("P-256").as_dict(private=False)}),  # signed by another key
    lambda: proof(RSA, "RS256"),
    lambda: proof(htm="POST"),
    lambda: proof(htu=URL + "?x=1"),
    lambda: proof(iat=int(NOW) - 301),
    lambda: proof(iat=int(NOW) + 31),
    lambda: proof(iat=None),
    lambda: proof(jti=None),
    lambda: proof(jti=""),
    lambda: "not.a.jwt",
], ids=["typ", "private-jwk", "other-key", "rs256", "htm", "htu", "stale", "future", "no-iat", "no-jti", "empty-jti",
        "garbage"])
def test_a_proof_that_fails_a_check_is_refused(made):
    with pytest.raises(ProofError) as refused:
        check_proof(made(), "GET", URL, now=NOW)
    assert not refused.value.nonce


def test_an_unsigned_proof_is_refused():
    head, body, _ = proof().split(".")
    with pytest.raises(ProofError):
        check_proof(f"{head}.{body}.", "GET", URL, now=NOW)


def test_a_required_nonce_is_asked_for_then_accepted_in_its_window_and_the_next():
    with pytest.raises(ProofError) as refused:
        check_proof(proof(), "GET", URL, nonces=NONCES, nonce_required=True, now=NOW)
    assert refused.value.nonce
    nonce = NONCES.current(NOW)
    assert check_proof(proof(nonce=nonce), "GET", URL, nonces=NONCES, nonce_required=True, now=NOW)
    later = NOW + 300
    assert check_proof(proof(nonce=nonce, iat=int(later)), "GET", URL, nonces=NONCES, now=later)
    with pytest.raises(ProofError) as stale:
        check_proof(proof(nonce=nonce, iat=int(NOW + 600)), "GET", URL, nonces=NONCES, now=NOW + 600)
    assert stale.value.nonce


def test_nonces_are_the_same_on_every_node_with_the_same_key():
    assert Nonces(b"k" * 32).current(time.time()) == NONCES.current(time.time())
    assert Nonces(b"x" * 32).current(NOW) != NONCES.current(NOW)
