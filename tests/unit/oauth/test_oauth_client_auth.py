"""Client authentication at the token endpoint: tls_client_auth and private_key_jwt, and everything they refuse."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import jwt
import pytest
from authlib.oauth2.rfc6749 import InvalidClientError
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.call import ClientCertificate
from gateway.oauth.client_auth import (
    ASSERTION_TYPE,
    CLOCK_SKEW,
    FRESH_SECONDS,
    MAX_ASSERTION_SECONDS,
    MAX_JTI_CHARS,
    MAX_LIVE_JTIS,
    PrivateKeyJwt,
    TlsClientAuth,
)
from gateway.oauth.models import Client
from gateway.pki import make_signing_jwk, public_jwk

ISSUER = "https://as.obgw.test"
SUBJECT = "CN=tpp-demo,O=obgw demo TPP"
CA = "CN=obgw dev CA,O=obgw dev"
CERT = ClientCertificate(thumbprint="registered-thumbprint", subject=SUBJECT, issuer=CA,
                         not_after=datetime(2030, 1, 1, tzinfo=timezone.utc))
OTHER_CERT = replace(CERT, thumbprint="another-thumbprint")

SIGNING_JWK = make_signing_jwk()                                   # the TPP's private ES256 key
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_JWK = RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True) | {"kid": "rsa-1", "use": "sig"}  # no alg pinned

CLIENT = Client(client_id="tpp-demo", client_name="Demo TPP", roles=("AISP",), redirect_uris=("https://tpp.test/cb",),
                auth_methods=("tls_client_auth", "private_key_jwt"), cert_thumbprints=(CERT.thumbprint,),
                subject_dn=None, issuer_dn=None, jwks={"keys": [public_jwk(SIGNING_JWK), RSA_JWK]})
TLS_ONLY = replace(CLIENT, client_id="tpp-tls", auth_methods=("tls_client_auth",))
JWT_ONLY = replace(CLIENT, client_id="tpp-jwt", auth_methods=("private_key_jwt",))
BY_DN = replace(CLIENT, client_id="tpp-dn", cert_thumbprints=(), subject_dn=SUBJECT, issuer_dn=CA)
CLIENTS = {c.client_id: c for c in (CLIENT, TLS_ONLY, JWT_ONLY, BY_DN)}


def query_client(client_id):
    return CLIENTS.get(client_id)


@dataclass
class _Request:
    form: dict
    headers: dict = field(default_factory=dict)
    certificate: ClientCertificate | None = CERT


class _ReplayStore:
    def __init__(self, full: bool = False) -> None:
        self.claimed: dict[tuple[str, str], int] = {}
        self.full = full

    def claim_jti(self, client_id: str, jti: str, seconds: int, limit: int) -> str:
        assert limit == MAX_LIVE_JTIS
        if (client_id, jti) in self.claimed:
            return "used"
        if self.full:
            return "full"
        self.claimed[(client_id, jti)] = seconds
        return "claimed"


@pytest.fixture
def store():
    return _ReplayStore()


@pytest.fixture
def private_key_jwt(store):
    return PrivateKeyJwt(ISSUER, store)


def _assertion(*, client_id: str = "tpp-demo", alg: str = "ES256", kid: str | None = SIGNING_JWK["kid"],
               key=None, **changes) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": now, "exp": now + 60,
              "jti": str(uuid.uuid4())} | changes
    claims = {k: v for k, v in claims.items() if v is not None}
    signing_key = key if key is not None else ECAlgorithm.from_jwk(SIGNING_JWK)
    return jwt.encode(claims, signing_key, alg, headers={"kid": kid} if kid else None)


def _assertion_form(assertion: str, **extra) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, "grant_type": "client_credentials"
            } | extra


def _refused(method, request) -> str:
    with pytest.raises(InvalidClientError) as refused:
        method(query_client, request)
    assert refused.value.status_code == 401
    assert refused.value.error == "invalid_client"
    return refused.value.description


# --- both methods ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", [TlsClientAuth(), PrivateKeyJwt(ISSUER, _ReplayStore())], ids=lambda m: m.name)
@pytest.mark.parametrize("request_", [
    _Request(form={"client_id": "tpp-demo", "client_secret": "s3cret"}),
    _Request(form={"client_id": "tpp-demo"}, headers={"authorization": "Basic dHBwLWRlbW86czNjcmV0"}),
    _Request(form={"client_id": "tpp-demo"}, headers={"authorization": "basic dHBwLWRlbW86czNjcmV0"}),
], ids=["secret-in-form", "basic-header", "basic-header-lowercase"])
def test_a_client_secret_is_refused_outright(method, request_):
    assert "secrets are not accepted" in _refused(method, request_)


# --- tls_client_auth -------------------------------------------------------------------------------------------

def test_tls_client_auth_accepts_the_holder_of_the_registered_certificate():
    assert TlsClientAuth()(query_client, _Request(form={"client_id": "tpp-demo"})) is CLIENT


def test_tls_client_auth_leaves_an_assertion_request_to_private_key_jwt():
    assert TlsClientAuth()(query_client, _Request(form=_assertion_form(_assertion()))) is None


def test_tls_client_auth_needs_a_client_id():
    assert "client_id is required" in _refused(TlsClientAuth(), _Request(form={}))


def test_tls_client_auth_refuses_an_unknown_client():
    assert "Unknown" in _refused(TlsClientAuth(), _Request(form={"client_id": "tpp-nobody"}))


def test_tls_client_auth_refuses_a_client_not_registered_for_it():
    assert "not registered for tls_client_auth" in _refused(TlsClientAuth(), _Request(form={"client_id": "tpp-jwt"}))


def test_tls_client_auth_needs_a_certificate():
    request = _Request(form={"client_id": "tpp-demo"}, certificate=None)
    assert "certificate is required" in _refused(TlsClientAuth(), request)


def test_tls_client_auth_refuses_another_certificate_than_the_registered_one():
    request = _Request(form={"client_id": "tpp-demo"}, certificate=OTHER_CERT)
    assert "not the one registered" in _refused(TlsClientAuth(), request)


def test_a_client_registered_by_subject_dn_is_accepted_with_that_subject_from_that_issuer():
    assert TlsClientAuth()(query_client, _Request(form={"client_id": "tpp-dn"}, certificate=OTHER_CERT)) is BY_DN


def test_a_subject_dn_match_from_another_issuer_is_refused():
    rogue = replace(CERT, issuer="CN=rogue CA,O=evil")
    assert "not the one registered" in _refused(TlsClientAuth(), _Request(form={"client_id": "tpp-dn"},
                                                                         certificate=rogue))


def test_another_subject_from_the_registered_issuer_is_refused():
    other = replace(CERT, subject="CN=tpp-other,O=obgw demo TPP")
    assert "not the one registered" in _refused(TlsClientAuth(), _Request(form={"client_id": "tpp-dn"},
                                                                         certificate=other))


# --- private_key_jwt -------------------------------------------------------------------------------------------

def test_a_good_es256_assertion_authenticates_the_client_and_claims_its_jti(private_key_jwt, store):
    assertion = _assertion(jti="jti-good")
    assert private_key_jwt(query_client, _Request(form=_assertion_form(assertion))) is CLIENT
    seconds = store.claimed[("tpp-demo", "jti-good")]
    assert 60 <= seconds <= 60 + CLOCK_SKEW + 1  # remembered until exp (and the skew allowance)


def test_a_long_lived_assertions_jti_is_remembered_only_while_it_could_be_accepted(private_key_jwt, store):
    now = int(time.time())
    assertion = _assertion(jti="jti-long", iat=now, exp=now + MAX_ASSERTION_SECONDS)
    assert private_key_jwt(query_client, _Request(form=_assertion_form(assertion))) is CLIENT
    # Fresh for FRESH_SECONDS after iat whatever exp says: the jti is kept that long, not an hour.
    assert FRESH_SECONDS <= store.claimed[("tpp-demo", "jti-long")] <= FRESH_SECONDS + CLOCK_SKEW + 1


def test_an_assertion_whose_aud_is_an_array_holding_the_issuer_is_refused(private_key_jwt, store):
    # FAPI 2.0 Security Profile §5.3.2.1 / RFC 7523bis: a single string; PyJWT alone would accept this.
    request = _Request(form=_assertion_form(_assertion(aud=[ISSUER])))
    assert "as a single string" in _refused(private_key_jwt, request)
    assert store.claimed == {}


@pytest.mark.parametrize("jti", ["j" * (MAX_JTI_CHARS + 1), "", 12345], ids=["too-long", "empty", "a-number"])
def test_a_jti_that_is_not_a_short_string_is_refused_before_it_is_stored(private_key_jwt, store, jti):
    request = _Request(form=_assertion_form(_assertion(jti=jti)))
    assert "must be a string" in _refused(private_key_jwt, request)  # PyJWT says so of a number first
    assert store.claimed == {}


def test_a_jti_of_the_longest_length_is_accepted(private_key_jwt, store):
    assertion = _assertion(jti="j" * MAX_JTI_CHARS)
    assert private_key_jwt(query_client, _Request(form=_assertion_form(assertion))) is CLIENT


def test_a_client_holding_the_most_jtis_at_once_is_refused_until_some_are_forgotten():
    method = PrivateKeyJwt(ISSUER, _ReplayStore(full=True))
    assert "too many client assertions" in _refused(method, _Request(form=_assertion_form(_assertion())))


def test_a_good_ps256_assertion_with_a_registered_rsa_key_is_accepted(private_key_jwt):
    assertion = _assertion(alg="PS256", kid="rsa-1", key=RSA_KEY)
    assert private_key_jwt(query_client, _Request(form=_assertion_form(assertion))) is CLIENT


def test_an_assertion_with_the_client_id_in_the_form_too_is_accepted(private_key_jwt):
    form = _assertion_form(_assertion(), client_id="tpp-demo")
    assert private_key_jwt(query_client, _Request(form=form)) is CLIENT


def test_private_key_jwt_leaves_a_request_without_assertion_to_tls_client_auth(private_key_jwt):
    assert private_key_jwt(query_client, _Request(form={"client_id": "tpp-demo"})) is None


@pytest.mark.parametrize("form", [
    {"client_assertion_type": ASSERTION_TYPE},
    {"client_assertion": "x.y.z"},
    {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "client_assertion": "x"},
], ids=["type-without-assertion", "assertion-without-type", "wrong-type"])
def test_an_incomplete_assertion_request_is_refused(private_key_jwt, form):
    assert "client_assertion_type must be" in _refused(private_key_jwt, _Request(form=form))


def test_an_assertion_that_is_not_a_jwt_is_refused(private_key_jwt):
    assert "not a JWT" in _refused(private_key_jwt, _Request(form=_assertion_form("not-a-jwt")))


def test_an_assertion_for_another_audience_is_refused(private_key_jwt):
    request = _Request(form=_assertion_form(_assertion(aud="https://other-as.test")))
    assert "aud must be the issuer" in _refused(private_key_jwt, request)


def test_an_expired_assertion_is_refused(private_key_jwt):
    now = int(time.time())
    request = _Request(form=_assertion_form(_assertion(iat=now - 200, exp=now - CLOCK_SKEW - 10)))
    assert "expired" in _refused(private_key_jwt, request)


def test_an_assertion_used_later_than_fresh_seconds_after_its_iat_is_refused(private_key_jwt, store):
    now = int(time.time())
    stale = _assertion(iat=now - FRESH_SECONDS - CLOCK_SKEW - 10, exp=now + 600)
    assert f"within {FRESH_SECONDS} s" in _refused(private_key_jwt, _Request(form=_assertion_form(stale)))
    assert store.claimed == {}


def test_an_assertion_from_the_future_is_refused(private_key_jwt):
    now = int(time.time())
    early = _assertion(iat=now + CLOCK_SKEW + 20, nbf=None, exp=now + 600)
    with pytest.raises(InvalidClientError) as refused:
        private_key_jwt(query_client, _Request(form=_assertion_form(early)))
    assert refused.value.status_code == 401


def test_an_assertion_living_longer_than_the_cap_is_refused(private_key_jwt):
    now = int(time.time())
    long_lived = _assertion(iat=now, exp=now + MAX_ASSERTION_SECONDS + 1)
    assert f"at most {MAX_ASSERTION_SECONDS} s" in _refused(private_key_jwt, _Request(form=_assertion_form(long_lived)))


def test_a_replayed_assertion_is_refused(private_key_jwt):
    assertion = _assertion()
    assert private_key_jwt(query_client, _Request(form=_assertion_form(assertion))) is CLIENT
    assert "jti has been used" in _refused(private_key_jwt, _Request(form=_assertion_form(assertion)))


@pytest.mark.parametrize("changes", [{"iss": "tpp-other"}, {"sub": "tpp-other"}, {"iss": None}],
                         ids=["iss-differs", "sub-differs", "no-iss"])
def test_an_assertion_whose_iss_is_not_its_sub_is_refused(private_key_jwt, changes):
    request = _Request(form=_assertion_form(_assertion(**changes)))
    assert "iss and sub must both be the client_id" in _refused(private_key_jwt, request)


def test_an_assertion_for_another_client_than_the_form_names_is_refused(private_key_jwt):
    request = _Request(form=_assertion_form(_assertion(), client_id="tpp-other"))
    assert "iss and sub must both be the client_id" in _refused(private_key_jwt, request)


def test_an_assertion_of_an_unknown_client_is_refused(private_key_jwt):
    request = _Request(form=_assertion_form(_assertion(client_id="tpp-nobody")))
    assert "Unknown" in _refused(private_key_jwt, request)


def test_an_assertion_of_a_client_not_registered_for_private_key_jwt_is_refused(private_key_jwt):
    request = _Request(form=_assertion_form(_assertion(client_id="tpp-tls")))
    assert "not registered for private_key_jwt" in _refused(private_key_jwt, request)


@pytest.mark.parametrize("certificate", [None, OTHER_CERT], ids=["no-certificate", "another-certificate"])
def test_a_good_assertion_without_the_registered_certificate_is_refused(private_key_jwt, store, certificate):
    request = _Request(form=_assertion_form(_assertion()), certificate=certificate)
    assert "certificate" in _refused(private_key_jwt, request)
    assert store.claimed == {}  # a stolen assertion does not even burn its jti


def test_an_assertion_signed_with_an_unregistered_kid_is_refused(private_key_jwt):
    request = _Request(form=_assertion_form(_assertion(kid="kid-nobody-registered")))
    assert "key the client has not registered" in _refused(private_key_jwt, request)


def test_an_assertion_signed_by_another_key_under_a_registered_kid_is_refused(private_key_jwt):
    forged = _assertion(key=ECAlgorithm.from_jwk(make_signing_jwk()))
    assert "not valid" in _refused(private_key_jwt, _Request(form=_assertion_form(forged)))


@pytest.mark.parametrize("alg, kid, key", [
    ("RS256", "rsa-1", RSA_KEY),
    ("HS256", SIGNING_JWK["kid"], b"a-shared-secret-long-enough-for-hs256-000000"),
], ids=["RS256", "HS256"])
def test_an_assertion_with_an_algorithm_fapi_does_not_allow_is_refused(private_key_jwt, alg, kid, key):
    request = _Request(form=_assertion_form(_assertion(alg=alg, kid=kid, key=key)))
    assert "key the client has not registered" in _refused(private_key_jwt, request)
