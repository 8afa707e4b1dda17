"""x-jws-signature: a UK OB v3.1.4+ detached JWS over the body as sent, and every way a signature is refused.

Signatures are made three ways: by `sign_detached`, by hand here with `cryptography` alone (`forge`), and by joserfc
(an independent JOSE implementation), so the verifier is never only checked against its own signer.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc import jws as joserfc_jws
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.payments.jws import (
    CLOCK_SKEW,
    IAT,
    ISS,
    MAX_AGE_SECONDS,
    MAX_HEADER_CHARS,
    TAN,
    SignatureProblem,
    sign_detached,
    verify_detached,
)
from gateway.pki import make_signing_jwk, public_jwk

CLIENT = "tpp-demo"
NOW = 1_800_000_000
BODY = (b'{"Data":{"Initiation":{"InstructionIdentification":"ACME412","EndToEndIdentification":"FRESCO.21302.GFX.20",'
        b'"InstructedAmount":{"Amount":"165.88","Currency":"GBP"}}},"Risk":{}}')
CRIT = [IAT, ISS, TAN]

ES_JWK = make_signing_jwk()          # the TPP's ES256 key, as the dev PKI makes it (RFC 7638 kid)
OTHER_JWK = make_signing_jwk()       # a second registered key of the same TPP
STRANGER_JWK = make_signing_jwk()    # a key nobody registered
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_JWK = {**RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True), "kid": "rsa-signing-1", "alg": "PS256", "use": "sig"}
JWKS = {"keys": [public_jwk(ES_JWK), public_jwk(OTHER_JWK), public_jwk(RSA_JWK)]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ec_key(jwk: dict) -> ec.EllipticCurvePrivateKey:
    d = int.from_bytes(unb64(jwk["d"]), "big")
    return ec.derive_private_key(d, ec.SECP256R1())


def ob_header(jwk: dict = ES_JWK, alg: str = "ES256", **extra) -> dict:
    return {"alg": alg, "kid": jwk["kid"], IAT: NOW, ISS: CLIENT, TAN: "openbanking.org.uk", "crit": list(CRIT),
            **extra}


def raw_signature(signing_input: bytes, key) -> bytes:
    """ES256 (JWS raw r||s, RFC 7518 §3.4) or PS256 (RFC 7518 §3.5) by hand, with cryptography alone."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(signing_input, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def forge(header: dict | bytes, body: bytes = BODY, key=None, unencoded: bool = False) -> str:
    """A detached JWS made by hand: `header` a dict (or raw header bytes), signed over BASE64URL(body).

    `unencoded` signs RFC 7797's `b64: false` input (the raw body), as UK OB v3.0-3.1.3 did.
    """
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    encoded = b64(raw)
    payload = body if unencoded else b64(body).encode()
    signature = raw_signature(encoded.encode() + b"." + payload, key or ec_key(ES_JWK))
    return f"{encoded}..{b64(signature)}"


def verify(value, body: bytes = BODY, jwks=JWKS, client_id: str = CLIENT, now: float = NOW) -> dict:
    return verify_detached(value, body, jwks, client_id, now=now)


def refused(value, body: bytes = BODY, jwks=JWKS, client_id: str = CLIENT, now: float = NOW) -> SignatureProblem:
    with pytest.raises(SignatureProblem) as caught:
        verify(value, body, jwks, client_id, now)
    return caught.value


def assert_invalid(value, claim: str | None = None, **kwargs) -> SignatureProblem:
    """Assert the signature is refused as `signature.invalid`, naming `claim` when given."""
    problem = refused(value, **kwargs)
    assert problem.reason == "signature.invalid", problem
    if claim is not None:
        assert problem.claim == claim, problem
    return problem


# --- good signatures ---------------------------------------------------------------------------------------------


def test_sign_detached_makes_an_ob_detached_jws_that_verifies():
    value = sign_detached(BODY, ES_JWK, CLIENT, iat=NOW)
    encoded_header, payload, _ = value.split(".")
    assert payload == ""                                        # detached: RFC 7515 Appendix F
    assert verify(value) == {
        "alg": "ES256", "kid": ES_JWK["kid"], IAT: NOW, ISS: CLIENT, TAN: "openbanking.org.uk", "crit": CRIT,
    }
    assert "b64" not in json.loads(unb64(encoded_header))          # v3.1.4+: no b64


def test_sign_detached_signs_base64url_of_the_body_not_the_raw_body():
    """Checked with cryptography alone: the signing input is BASE64URL(header) "." BASE64URL(body) (no RFC 7797)."""
    encoded_header, _, encoded_signature = sign_detached(BODY, ES_JWK, CLIENT, iat=NOW).split(".")
    signature = unb64(encoded_signature)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public = ec_key(ES_JWK).public_key()
    public.verify(der, f"{encoded_header}.{b64(BODY)}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):  # the unencoded (RFC 7797, b64: false) input is not what is signed
        public.verify(der, encoded_header.encode() + b"." + BODY, ec.ECDSA(hashes.SHA256()))


def test_sign_detached_uses_the_current_time_by_default():
    assert abs(verify(sign_detached(BODY, ES_JWK, CLIENT), now=time.time())[IAT] - time.time()) <= 2


def test_a_signature_made_by_hand_verifies():
    assert verify(forge(ob_header()))["kid"] == ES_JWK["kid"]


def test_the_kid_picks_the_key_among_several():
    assert verify(sign_detached(BODY, OTHER_JWK, CLIENT, iat=NOW))["kid"] == OTHER_JWK["kid"]


def test_ps256_with_a_registered_rsa_key():
    assert verify(sign_detached(BODY, RSA_JWK, CLIENT, iat=NOW))["alg"] == "PS256"
    assert verify(forge(ob_header(RSA_JWK, "PS256"), key=RSA_KEY))["kid"] == "rsa-signing-1"


_OB_REGISTRY = joserfc_jws.JWSRegistry(
    header_registry={IAT: HeaderParameter("OB iat", "int"), ISS: HeaderParameter("OB iss", "str"),
                     TAN: HeaderParameter("OB tan", "str")},
    algorithms=["ES256", "PS256"])


@pytest.mark.parametrize(("jwk", "alg", "import_key"), [(ES_JWK, "ES256", ECKey), (RSA_JWK, "PS256", RSAKey)])
def test_interoperates_with_joserfc(jwk, alg, import_key):
    """joserfc's compact JWS with its payload part deleted verifies here, and joserfc verifies sign_detached's."""
    theirs = joserfc_jws.serialize_compact(ob_header(jwk, alg), BODY, import_key.import_key(jwk), registry=_OB_REGISTRY)
    encoded_header, _, encoded_signature = theirs.split(".")
    assert verify(f"{encoded_header}..{encoded_signature}")["alg"] == alg

    encoded_header, _, encoded_signature = sign_detached(BODY, jwk, CLIENT, iat=NOW).split(".")
    reattached = f"{encoded_header}.{b64(BODY)}.{encoded_signature}"  # RFC 7515 Appendix F: re-insert the payload
    public = {k: v for k, v in public_jwk(jwk).items() if k != "key_ops"}  # joserfc verifies with no "sign" key
    assert joserfc_jws.deserialize_compact(reattached, import_key.import_key(public),
                                           registry=_OB_REGISTRY).payload == BODY


@pytest.mark.parametrize("extra", [{"typ": "JOSE"}, {"cty": "application/json"}, {"cty": "json"},
                                   {"typ": "JOSE", "cty": "application/json"}])
def test_optional_typ_and_cty(extra):
    assert verify(forge(ob_header(**extra)))


@pytest.mark.parametrize("iat", [NOW, NOW + CLOCK_SKEW, NOW - MAX_AGE_SECONDS, NOW - MAX_AGE_SECONDS - CLOCK_SKEW,
                                 NOW - 0.5])
def test_iat_within_the_window(iat):
    assert verify(forge({**ob_header(), IAT: iat}))[IAT] == iat


def test_surrounding_whitespace_of_the_header_value_is_not_part_of_it():
    assert verify(" " + sign_detached(BODY, ES_JWK, CLIENT, iat=NOW) + "\t")


# --- missing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing(value):
    assert refused(value).reason == "signature.missing"


# --- malformed ---------------------------------------------------------------------------------------------------

_GOOD = sign_detached(BODY, ES_JWK, CLIENT, iat=NOW)
_H, _, _S = _GOOD.split(".")
_JSON_STRING = b64(b'"ES256"')
_NOT_UTF8 = b64(bytes([0xFF, 0xFE]) + b"{}")
_DUPLICATE = b64(b'{"alg": "ES256", "alg": "none"}')


@pytest.mark.parametrize("value", [
    pytest.param("not-a-jws", id="one part"),
    pytest.param(f"{_H}.{_S}", id="two parts"),
    pytest.param(f"{_H}..{_S}.", id="four parts"),
    pytest.param(f"{_H}.{b64(BODY)}.{_S}", id="attached (non-detached) JWS"),
    pytest.param(f"{_H}.e30.{_S}", id="any payload part"),
    pytest.param(f"{_H}=..{_S}", id="padded header"),
    pytest.param(f"{_H}..{_S}==", id="padded signature"),
    pytest.param(f"{_H[:-1]}*..{_S}", id="non-alphabet header"),
    pytest.param(f"{_H}..{_S[:-1]}+", id="standard (not url) base64 signature"),
    pytest.param(f"AAAAA..{_S}", id="impossible base64 length"),
    pytest.param(f"{b64(b'{}')[:-1]}1..{_S}", id="non-canonical base64 (stray bits)"),
    pytest.param(f"..{_S}", id="empty header"),
    pytest.param(f"{b64(b'not json')}..{_S}", id="header not JSON"),
    pytest.param(f"{b64(b'[1, 2]')}..{_S}", id="header a JSON array"),
    pytest.param(f"{_JSON_STRING}..{_S}", id="header a JSON string"),
    pytest.param(f"{_NOT_UTF8}..{_S}", id="header not UTF-8"),
    pytest.param(f"{_DUPLICATE}..{_S}", id="duplicate header member"),
    pytest.param(f"{_H}..{_S}" + "A" * MAX_HEADER_CHARS, id="too long"),
])
def test_malformed(value):
    assert refused(value).reason == "signature.malformed"


def test_a_nan_iat_is_not_json():
    raw = json.dumps(ob_header()).replace(str(NOW), "NaN").encode()
    assert refused(forge(raw)).reason == "signature.malformed"


# --- the body, the signature -------------------------------------------------------------------------------------


def test_the_body_changed_by_one_byte():
    value = sign_detached(BODY, ES_JWK, CLIENT, iat=NOW)
    assert_invalid(value, body=BODY.replace(b"165.88", b"165.89"))
    assert_invalid(value, body=BODY[:-1] + b" ")
    assert_invalid(value, body=b"")


def test_the_body_as_sent_not_an_equivalent_json():
    value = sign_detached(BODY, ES_JWK, CLIENT, iat=NOW)
    assert_invalid(value, body=json.dumps(json.loads(BODY), indent=2).encode())


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda s: s[:-1] + bytes([s[-1] ^ 1]), id="one bit flipped"),
    pytest.param(lambda s: s[:-1], id="one byte short"),
    pytest.param(lambda s: s + b"\0", id="one byte long"),
    pytest.param(lambda s: b"", id="empty"),
])
def test_a_tampered_signature(tamper):
    encoded_header, _, encoded_signature = _GOOD.split(".")
    signature = unb64(encoded_signature)
    assert_invalid(f"{encoded_header}..{b64(tamper(signature))}")


def test_a_header_changed_after_signing():
    value = sign_detached(BODY, ES_JWK, CLIENT, iat=NOW)
    header = {**json.loads(unb64(_H)), IAT: NOW - 1}
    assert_invalid(f"{b64(json.dumps(header).encode())}..{value.split('.')[2]}")


# --- the key: kid, alg, and the key deciding ---------------------------------------------------------------------


def test_an_unknown_kid():
    assert_invalid(forge(ob_header(STRANGER_JWK), key=ec_key(STRANGER_JWK)), "kid")


def test_a_registered_kid_on_a_signature_by_another_key():
    assert_invalid(forge(ob_header(OTHER_JWK)))                              # kid of OTHER_JWK, signed with ES_JWK
    assert_invalid(forge(ob_header(), key=ec_key(STRANGER_JWK)))           # kid of ES_JWK, signed by a stranger


@pytest.mark.parametrize("kid", [None, "", 7, ["x"]])
def test_kid_missing_or_not_a_string(kid):
    header = ob_header()
    if kid is None:
        del header["kid"]
    else:
        header["kid"] = kid
    assert_invalid(forge(header), "kid")


@pytest.mark.parametrize("jwks", [
    {"keys": []}, {}, {"keys": "none"}, {"keys": [public_jwk(ES_JWK), public_jwk(ES_JWK)]},  # ambiguous kid
    {"keys": [{**public_jwk(ES_JWK), "use": "enc"}]},
    {"keys": [{**public_jwk(ES_JWK), "key_ops": ["encrypt"]}]},
    {"keys": [{**public_jwk(ES_JWK), "key_ops": "verify"}]},
    {"keys": [{**public_jwk(ES_JWK), "alg": "ES384"}]},
    {"keys": [{**public_jwk(ES_JWK), "x": "AAAA"}]},                                     # not a point on P-256
    {"keys": [{"kty": "oct", "kid": ES_JWK["kid"], "k": b64(b"secret")}]},
], ids=["empty", "no keys", "keys not a list", "duplicate kid", "use enc", "key_ops encrypt only", "key_ops a string",
        "jwk alg ES384", "broken key", "symmetric key"])
def test_the_registered_key_must_be_one_usable_signature_key(jwks):
    assert_invalid(sign_detached(BODY, ES_JWK, CLIENT, iat=NOW), jwks=jwks)


@pytest.mark.parametrize("ops", [["verify"], ["sign"], ["sign", "verify"]])
def test_key_ops_of_a_signature_key_are_accepted(ops):
    """`sign` too: PyJWT's to_jwk of a private key, its private members removed, says sign (as RSA_JWK here)."""
    assert verify(sign_detached(BODY, ES_JWK, CLIENT, iat=NOW),
                  jwks={"keys": [{**public_jwk(ES_JWK), "key_ops": ops}]})


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384", "RS256", "PS512", "EdDSA", None, ["ES256"]])
def test_other_algorithms(alg):
    header = {**ob_header(), "alg": alg}
    assert_invalid(forge(header), "alg")
    assert_invalid(f"{b64(json.dumps(header).encode())}..", "alg")       # alg none's empty signature too


@pytest.mark.parametrize("secret", [
    pytest.param(json.dumps(public_jwk(ES_JWK)).encode(), id="public JWK JSON"),
    pytest.param(ec_key(ES_JWK).public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo),
                 id="public key PEM"),
    pytest.param(unb64(public_jwk(ES_JWK)["x"]), id="public key x"),
])
def test_hs256_with_the_public_key_as_the_secret(secret):
    encoded = b64(json.dumps({**ob_header(), "alg": "HS256"}).encode())
    mac = hmac.new(secret, f"{encoded}.{b64(BODY)}".encode(), hashlib.sha256).digest()
    assert_invalid(f"{encoded}..{b64(mac)}", "alg")


def test_the_key_decides_the_algorithm_not_the_header():
    assert_invalid(forge(ob_header(ES_JWK, "PS256"), key=RSA_KEY), "alg")             # EC key named, PS256 claimed
    assert_invalid(forge(ob_header(RSA_JWK, "ES256")), "alg")                          # RSA key named, ES256 claimed
    unlabelled = {"keys": [{k: v for k, v in public_jwk(RSA_JWK).items() if k != "alg"}]}
    assert_invalid(forge(ob_header(RSA_JWK, "ES256")), "alg", jwks=unlabelled)        # even without a JWK alg


def test_a_pkcs1_v1_5_signature_is_not_ps256():
    encoded = b64(json.dumps(ob_header(RSA_JWK, "PS256")).encode())
    signature = RSA_KEY.sign(f"{encoded}.{b64(BODY)}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert_invalid(f"{encoded}..{b64(signature)}")


def test_rsa_keys_shorter_than_2048_bits():
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwk = {**RSAAlgorithm.to_jwk(short.public_key(), as_dict=True), "kid": "short", "alg": "PS256"}
    assert_invalid(forge(ob_header(jwk, "PS256"), key=short), "kid", jwks={"keys": [jwk]})


def test_ec_keys_on_another_curve():
    p384 = ec.generate_private_key(ec.SECP384R1())
    jwk = {**ECAlgorithm.to_jwk(p384.public_key(), as_dict=True), "kid": "p384"}
    assert_invalid(forge(ob_header(jwk)), "kid", jwks={"keys": [jwk]})


# --- b64, crit, header members -----------------------------------------------------------------------------------


def test_b64_false_is_refused_even_when_correctly_signed():
    """UK OB v3.0-3.1.3's RFC 7797 form, correctly made: v3.1.4+ removed b64, and obgw refuses it."""
    header = {**ob_header(), "b64": False, "crit": [*CRIT, "b64"]}
    assert "v3.1.4" in assert_invalid(forge(header, unencoded=True), "b64").message
    assert_invalid(forge({**ob_header(), "b64": False}, unencoded=True), "b64")


def test_b64_true_is_refused_too():
    assert_invalid(forge({**ob_header(), "b64": True, "crit": [*CRIT, "b64"]}), "b64")


@pytest.mark.parametrize("left_out", CRIT)
def test_crit_missing_one(left_out):
    assert_invalid(forge({**ob_header(), "crit": [name for name in CRIT if name != left_out]}), "crit")


@pytest.mark.parametrize("crit", [
    pytest.param([*CRIT, "http://openbanking.org.uk/exp"], id="extra unknown name"),
    pytest.param([*CRIT, "kid"], id="extra JWS name"),
    pytest.param([*CRIT, IAT], id="duplicate"),
    pytest.param([], id="empty"),
    pytest.param(" ".join(CRIT), id="a string"),
    pytest.param([IAT, ISS, 3], id="not strings"),
    pytest.param(None, id="null"),
])
def test_crit_must_list_exactly_the_three(crit):
    assert_invalid(forge({**ob_header(), "crit": crit}), "crit")


def test_crit_absent():
    header = ob_header()
    del header["crit"]
    assert_invalid(forge(header), "crit")


def test_an_extra_critical_parameter_that_is_present():
    assert_invalid(forge({**ob_header(), "crit": [*CRIT, "urn:example:nonce"], "urn:example:nonce": "n"}))


@pytest.mark.parametrize("name", CRIT)
def test_a_critical_parameter_listed_but_absent(name):
    header = ob_header()
    del header[name]
    assert_invalid(forge(header), name)


@pytest.mark.parametrize("member", [
    {"jku": "https://attacker.example/jwks"}, {"jwk": public_jwk(STRANGER_JWK)}, {"x5u": "https://attacker.example"},
    {"http://openbanking.org.uk/exp": NOW + 60}, {"iat": NOW},
])
def test_header_members_ob_does_not_specify(member):
    assert_invalid(forge({**ob_header(), **member}), next(iter(member)))


@pytest.mark.parametrize("extra", [{"typ": "JWT"}, {"typ": 1}, {"cty": "text/plain"}, {"cty": "application/jose"}])
def test_wrong_typ_or_cty(extra):
    assert_invalid(forge(ob_header(**extra)), next(iter(extra)))


# --- the OB claims: iat, iss, tan --------------------------------------------------------------------------------


@pytest.mark.parametrize("iat", [NOW + CLOCK_SKEW + 1, NOW + 3600])
def test_iat_in_the_future(iat):
    assert_invalid(forge({**ob_header(), IAT: iat}), IAT)


@pytest.mark.parametrize("iat", [NOW - MAX_AGE_SECONDS - CLOCK_SKEW - 1, NOW - 86400, 0])
def test_iat_too_old(iat):
    assert_invalid(forge({**ob_header(), IAT: iat}), IAT)


@pytest.mark.parametrize("iat", [str(NOW), True, None, [NOW], {"t": NOW}])
def test_iat_not_a_number(iat):
    assert_invalid(forge({**ob_header(), IAT: iat}), IAT)


def test_iat_infinite():
    raw = json.dumps(ob_header()).replace(str(NOW), "1e400").encode()  # valid JSON, parses to inf
    assert_invalid(forge(raw), IAT)


@pytest.mark.parametrize("iss", ["tpp-other", "", CLIENT.upper(), f"{CLIENT} ", 7, None])
def test_iss_another_client(iss):
    assert_invalid(forge({**ob_header(), ISS: iss}), ISS)


def test_iss_is_the_client_that_sends_it():
    assert_invalid(sign_detached(BODY, ES_JWK, "tpp-other", iat=NOW), ISS)
    assert verify(sign_detached(BODY, ES_JWK, "tpp-other", iat=NOW), client_id="tpp-other")


@pytest.mark.parametrize("tan", ["openbankingtest.org.uk", "OPENBANKING.ORG.UK", "attacker.example", "", None])
def test_tan_wrong(tan):
    assert_invalid(forge({**ob_header(), TAN: tan}), TAN)


# --- the signer ----------------------------------------------------------------------------------------------------


def test_sign_detached_refuses_what_it_cannot_sign_with():
    with pytest.raises(ValueError, match="kid"):
        sign_detached(BODY, {k: v for k, v in ES_JWK.items() if k != "kid"}, CLIENT)
    with pytest.raises(ValueError, match="private"):
        sign_detached(BODY, public_jwk(ES_JWK), CLIENT)
    with pytest.raises(ValueError, match="HS256"):
        sign_detached(BODY, {"kty": "oct", "k": b64(b"secret"), "kid": "k", "alg": "HS256"}, CLIENT)
