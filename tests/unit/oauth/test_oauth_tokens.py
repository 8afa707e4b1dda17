"""Access tokens: what the verifier refuses (and why), what the issuer puts in a token response, pseudonyms."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.crypto import pseudonym
from gateway.oauth.models import Client, Grantee
from gateway.oauth.signing_keys import KeyEncryptionKey, KeyRing, new_key_record
from gateway.oauth.tokens import (
    GRANT_CLAIM,
    INTENT_CLAIM,
    REQUIRED_CLAIMS,
    AccessTokenVerifier,
    TokenIssuer,
    TokenRejected,
)

ISSUER = "https://as.obgw.test"
AUDIENCE = "https://api.obgw.test"
THUMBPRINT = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"
BOUND = {"x5t#S256": THUMBPRINT}  # the cnf of a certificate-bound token


def _ring() -> KeyRing:
    kek = KeyEncryptionKey(bytes(32))
    kid, record = new_key_record(kek)
    return KeyRing({kid: record}, overlap=600, kek=kek)


RING = _ring()
KEY = RING.signing
LIFETIME = 300  # the access-token lifetime the server is configured with
VERIFIER = AccessTokenVerifier(ISSUER, AUDIENCE, LIFETIME)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "cust-abc", "client_id": "tpp-demo", "scope": "accounts",
              "iat": now, "nbf": now, "exp": now + LIFETIME, "jti": "jti-1", "cnf": {"x5t#S256": THUMBPRINT}}
    return {k: v for k, v in (claims | changes).items() if v is not None}


def _token(claims: dict | None = None, *, key=None, kid: str | None = KEY.kid, typ: str | None = "at+jwt") -> str:
    headers = {k: v for k, v in {"kid": kid, "typ": typ}.items() if v is not None}
    return jwt.encode(_claims() if claims is None else claims, key or KEY.private, "ES256", headers=headers)


def _hand_made(header: dict, claims: dict, sign) -> str:
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return signing_input + "." + _b64(sign(signing_input.encode()))


def _hs256_with_public_pem() -> str:
    """The classic key-confusion attack: HS256 keyed with the PEM of the real public key (PyJWT refuses to make it)."""
    pem = KEY.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return _hand_made({"alg": "HS256", "typ": "at+jwt", "kid": KEY.kid}, _claims(),
                      lambda data: hmac.new(pem, data, hashlib.sha256).digest())


def _alg_none() -> str:
    return _hand_made({"alg": "none", "typ": "at+jwt", "kid": KEY.kid}, _claims(), lambda data: b"")


def _rs256() -> str:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(_claims(), rsa_key, "RS256", headers={"kid": KEY.kid, "typ": "at+jwt"})


def _es384() -> str:
    return jwt.encode(_claims(), ec.generate_private_key(ec.SECP384R1()), "ES384",
                      headers={"kid": KEY.kid, "typ": "at+jwt"})


def _resource_check(token: str):
    """What the resource stage does: the kid names the key, the key verifies the token."""
    return VERIFIER.verify(token, RING.verification_key(VERIFIER.kid_of(token)))


def _reason(call) -> str:
    with pytest.raises(TokenRejected) as rejected:
        call()
    return rejected.value.reason



# --- AccessTokenVerifier ---------------------------------------------------------------------------------------

def test_a_good_token_is_accepted_with_its_claims():
    claims = _resource_check(_token())
    assert claims["client_id"] == "tpp-demo"
    assert claims["cnf"] == {"x5t#S256": THUMBPRINT}


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_the_access_token_type_is_accepted_in_each_spelling_rfc9068_allows(typ):
    assert VERIFIER.kid_of(_token(typ=typ)) == KEY.kid


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9"])
def test_something_that_is_not_a_jwt_is_malformed(token):
    assert _reason(lambda: VERIFIER.kid_of(token)) == "token.malformed"
    assert _reason(lambda: VERIFIER.verify(token, KEY.private.public_key())) == "token.malformed"


@pytest.mark.parametrize("make", [_alg_none, _hs256_with_public_pem, _rs256, _es384],
                         ids=["none", "HS256-keyed-with-the-public-pem", "RS256", "ES384"])
def test_a_token_not_signed_with_es256_is_refused_before_any_key_is_used(make):
    token = make()
    assert _reason(lambda: VERIFIER.kid_of(token)) == "token.bad_signature"
    assert _reason(lambda: _resource_check(token)) == "token.bad_signature"
    # Even handed the real key directly, verify does not let another algorithm through.
    with pytest.raises(TokenRejected):
        VERIFIER.verify(token, KEY.private.public_key())


def test_an_id_token_typ_jwt_is_not_an_access_token():
    id_token = _token(typ="JWT")
    assert _reason(lambda: VERIFIER.kid_of(id_token)) == "token.malformed"


def test_a_token_without_typ_is_not_an_access_token():
    assert _reason(lambda: VERIFIER.kid_of(_token(typ=None))) == "token.malformed"


def test_a_token_naming_no_key_is_refused():
    assert _reason(lambda: VERIFIER.kid_of(_token(kid=None))) == "token.unknown_key"


def test_a_token_whose_kid_the_server_does_not_have_is_refused():
    token = _token(kid="some-other-kid")
    assert RING.verification_key(VERIFIER.kid_of(token)) is None
    assert _reason(lambda: _resource_check(token)) == "token.unknown_key"
    assert _reason(lambda: VERIFIER.verify(token, None)) == "token.unknown_key"


def test_a_token_signed_by_another_es256_key_has_a_bad_signature():
    forged = _token(key=ec.generate_private_key(ec.SECP256R1()))
    assert _reason(lambda: _resource_check(forged)) == "token.bad_signature"


@pytest.mark.parametrize("changes", [{"iss": "https://evil.test"}, {"aud": "https://other-api.test"},
                                     {"aud": "tpp-demo"}], ids=["issuer", "audience", "audience-is-a-client"])
def test_a_token_for_another_issuer_or_audience_is_refused(changes):
    assert _reason(lambda: _resource_check(_token(_claims(**changes)))) == "token.wrong_audience"


def test_an_expired_token_is_refused():
    now = int(time.time())
    expired = _token(_claims(iat=now - 600, nbf=now - 600, exp=now - 10))
    assert _reason(lambda: _resource_check(expired)) == "token.expired"


@pytest.mark.parametrize("lifetime", [3600 * 24 * 365, LIFETIME + 60], ids=["a-year", "a-minute-too-long"])
def test_a_token_living_longer_than_the_server_issues_is_refused_though_its_signature_is_good(lifetime):
    # What someone holding a stolen signing key would mint: a good signature, valid now, expiring far away.
    now = int(time.time())
    assert _reason(lambda: _resource_check(_token(_claims(iat=now, exp=now + lifetime)))) == "token.too_long_lived"


def test_a_token_issued_in_the_future_is_refused():
    # So exp - iat also bounds how far ahead of now a token's expiry can be.
    now = int(time.time())
    token = _token(_claims(iat=now + 3600, nbf=now, exp=now + 3600 + LIFETIME))
    assert _reason(lambda: _resource_check(token)) == "token.malformed"


def test_a_token_of_exactly_the_configured_lifetime_is_accepted():
    now = int(time.time())
    assert _resource_check(_token(_claims(iat=now - 10, nbf=now - 10, exp=now - 10 + LIFETIME)))


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_token_missing_a_required_claim_is_malformed(claim):
    token = _token({k: v for k, v in _claims().items() if k != claim})
    assert _reason(lambda: _resource_check(token)) == "token.malformed"


@pytest.mark.parametrize("cnf", ["thumbprint-as-a-string", {}, {"x5t#S256": 42}, {"jkt": 42}, {"x5t": THUMBPRINT}])
def test_a_token_bound_neither_to_a_certificate_nor_a_dpop_key_is_malformed(cnf):
    assert _reason(lambda: _resource_check(_token(_claims(cnf=cnf)))) == "token.malformed"


# --- TokenIssuer -----------------------------------------------------------------------------------------------

class _Keys:
    def __init__(self) -> None:
        self._ring = _ring()

    def ring(self) -> KeyRing:
        return self._ring


class _RefreshTokens:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], tuple[dict, int]] = {}

    def save_refresh_token(self, client_id: str, token: str, record: dict, seconds: int) -> None:
        self.saved[(client_id, token)] = (record, seconds)


CLIENT = Client(client_id="tpp-demo", client_name="Demo TPP", roles=("AISP",),
                redirect_uris=("https://tpp.test/cb",), auth_methods=("tls_client_auth",),
                cert_thumbprints=(THUMBPRINT,), subject_dn=None, issuer_dn=None)


def _grantee(nonce: str | None = "n-0S6_WzA2Mj", sca: bool = False) -> Grantee:
    return Grantee(subject=pseudonym(b"s" * 32, "customer-1"), consent_id="aac-123",
                   grant_id="grant-9", auth_time=int(time.time()) - 5, nonce=nonce, sca=sca)


@pytest.fixture
def keys():
    return _Keys()


@pytest.fixture
def store():
    return _RefreshTokens()


@pytest.fixture
def issuer(keys, store):
    return TokenIssuer(keys, store, ISSUER, AUDIENCE, access_seconds=LIFETIME, refresh_seconds=7200)


def _access_claims(keys, response) -> dict:
    token = response["access_token"]
    ring = keys.ring()
    return AccessTokenVerifier(ISSUER, AUDIENCE, LIFETIME).verify(token, ring.verification_key(VERIFIER.kid_of(token)))


def test_an_issued_access_token_passes_the_verifier_and_names_its_signing_key(issuer, keys):
    response = issuer.issue(CLIENT, BOUND, "openid accounts", _grantee(), include_refresh_token=True)
    header = jwt.get_unverified_header(response["access_token"])
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": keys.ring().signing.kid}
    assert _access_claims(keys, response)
    assert (response["token_type"], response["expires_in"], response["scope"]) == ("Bearer", 300, "openid accounts")


def test_a_consent_token_carries_the_client_the_customer_the_intent_and_the_grant(issuer, keys):
    grantee = _grantee()
    claims = _access_claims(keys, issuer.issue(CLIENT, BOUND, "openid accounts", grantee, False))
    assert {k: claims[k] for k in ("iss", "sub", "aud", "client_id", "scope")} == {
        "iss": ISSUER, "sub": grantee.subject, "aud": AUDIENCE, "client_id": "tpp-demo", "scope": "openid accounts"}
    assert claims["exp"] - claims["iat"] == 300
    assert claims["cnf"] == {"x5t#S256": THUMBPRINT}
    assert claims[INTENT_CLAIM] == "aac-123"
    assert claims[GRANT_CLAIM] == "grant-9"
    assert claims["auth_time"] == grantee.auth_time


def test_a_client_credentials_token_names_the_client_and_no_consent(issuer, keys):
    claims = _access_claims(keys, issuer.issue(CLIENT, BOUND, "accounts", None, False))
    assert claims["sub"] == "tpp-demo"
    assert claims["cnf"] == {"x5t#S256": THUMBPRINT}
    assert INTENT_CLAIM not in claims
    assert GRANT_CLAIM not in claims
    assert "auth_time" not in claims


def test_every_access_token_has_its_own_jti(issuer, keys):
    jtis = {_access_claims(keys, issuer.issue(CLIENT, BOUND, "accounts", None, False))["jti"]
            for _ in range(5)}
    assert len(jtis) == 5


def test_an_id_token_is_issued_for_openid_and_carries_the_intent_and_nonce_for_the_client(issuer, keys):
    grantee = _grantee()
    response = issuer.issue(CLIENT, BOUND, "openid accounts", grantee, False)
    ring = keys.ring()
    assert jwt.get_unverified_header(response["id_token"]) == {"alg": "ES256", "typ": "JWT", "kid": ring.signing.kid}
    claims = jwt.decode(response["id_token"], ring.verification_key(ring.signing.kid), algorithms=["ES256"],
                        audience="tpp-demo", issuer=ISSUER)
    assert claims["aud"] == "tpp-demo"
    assert claims["sub"] == grantee.subject
    assert claims[INTENT_CLAIM] == "aac-123"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["acr"] == "urn:openbanking:psd2:ca"  # a password only: customer authentication, not strong
    assert claims["auth_time"] == grantee.auth_time
    # An id_token is not an access token (its typ says so) and not for the API.
    assert _reason(lambda: VERIFIER.kid_of(response["id_token"])) == "token.malformed"


@pytest.mark.parametrize("sca, acr", [(False, "urn:openbanking:psd2:ca"), (True, "urn:openbanking:psd2:sca")])
def test_the_id_token_claims_sca_only_when_strong_customer_authentication_happened(issuer, sca, acr):
    response = issuer.issue(CLIENT, BOUND, "openid accounts", _grantee(sca=sca), include_refresh_token=True)
    assert jwt.decode(response["id_token"], options={"verify_signature": False})["acr"] == acr


def test_an_id_token_without_a_nonce_in_the_request_has_no_nonce_claim(issuer):
    response = issuer.issue(CLIENT, BOUND, "openid accounts", _grantee(nonce=None), False)
    assert "nonce" not in jwt.decode(response["id_token"], options={"verify_signature": False})


@pytest.mark.parametrize("scope, grantee", [("accounts", _grantee()), ("openid accounts", None)],
                         ids=["no-openid-scope", "no-customer"])
def test_no_id_token_without_openid_scope_and_a_customer(issuer, scope, grantee):
    assert "id_token" not in issuer.issue(CLIENT, BOUND, scope, grantee, False)


def test_a_refresh_token_is_stored_bound_to_client_certificate_and_consent(issuer, store):
    grantee = _grantee()
    response = issuer.issue(CLIENT, BOUND, "openid accounts", grantee, include_refresh_token=True)
    refresh = response["refresh_token"]
    assert refresh != response["access_token"] and len(refresh) >= 32
    record, seconds = store.saved[("tpp-demo", refresh)]
    assert seconds == 7200
    assert record["exp"] - int(time.time()) in (7199, 7200)
    assert {k: v for k, v in record.items() if k != "exp"} == {
        "client_id": "tpp-demo", "cnf": BOUND, "scope": "openid accounts", "consent_id": "aac-123",
        "subject": grantee.subject, "grant_id": "grant-9",
        "auth_time": grantee.auth_time, "sca": False}  # a refresh keeps how the customer was authenticated


@pytest.mark.parametrize("grantee, include", [(_grantee(), False), (None, True)],
                         ids=["not-asked-for", "no-customer"])
def test_no_refresh_token_unless_asked_for_with_a_customer(issuer, store, grantee, include):
    response = issuer.issue(CLIENT, BOUND, "openid accounts", grantee, include_refresh_token=include)
    assert "refresh_token" not in response
    assert store.saved == {}


# --- pseudonym -------------------------------------------------------------------------------------------------

def test_a_pseudonym_is_stable_for_one_secret_and_customer():
    assert pseudonym(b"secret-1" * 4, "customer-1") == pseudonym(b"secret-1" * 4, "customer-1")
    assert pseudonym(b"secret-1" * 4, "customer-1").startswith("cust-")


def test_a_pseudonym_differs_across_secrets_and_customers():
    names = {pseudonym(b"secret-1" * 4, "customer-1"), pseudonym(b"secret-2" * 4, "customer-1"),
             pseudonym(b"secret-1" * 4, "customer-2")}
    assert len(names) == 3
    assert all("customer" not in name for name in names)


def test_the_id_token_carries_the_at_hash_of_its_access_token(issuer, keys):
    response = issuer.issue(CLIENT, BOUND, "openid accounts", _grantee(), False)
    id_claims = jwt.decode(response["id_token"], options={"verify_signature": False})
    digest = hashlib.sha256(response["access_token"].encode()).digest()
    assert id_claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_a_dpop_bound_token_is_of_type_dpop_and_names_its_key(issuer, keys):
    response = issuer.issue(CLIENT, {"jkt": "key-thumbprint"}, "accounts", None, False)
    assert response["token_type"] == "DPoP"
    assert _access_claims(keys, response)["cnf"] == {"jkt": "key-thumbprint"}
