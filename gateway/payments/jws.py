"""The `x-jws-signature` of a payment request: a UK Open Banking detached JWS over the body as sent (v3.1.4+).

What UK OB specifies (Read/Write API Profile v3.1.4+, "Basics / Message Signing"; the text read is v3.1.6,
OpenBankingUK/read-write-api-docs-pub profiles/read-write-data-api-profile.md):

- The signature is a JWS with detached content (RFC 7515 Appendix F) in the `x-jws-signature` header: the compact
  serialization with its payload part deleted, `BASE64URL(header)..BASE64URL(signature)` (Step 3, Step 4).
- v3.1.4 removed `b64` (the OB Knowledge Base, "Message Signing FAQs": "`b64` claim is removed from Version 3.1.4
  onwards"; "For version 3.1.4 onward, ASPSPs must not include the `b64` claim in the header"; "ASPSP may reject
  messages with a `b64` claim in the JOSE header"). So the payload is base64url-encoded the standard way and the
  JWS Signing Input is `BASE64URL(header) || "." || BASE64URL(body)` (RFC 7515 §5.1), never RFC 7797's unencoded
  form (v3.0-3.1.3, `b64: false`). A header with `b64` is refused, whatever its value.
- The body is the raw bytes of the HTTP body as sent, never a re-serialised JSON object (FAQ: "Signature generation
  and validation should always be based on the raw sequence of bytes that constitute the HTTP body").
- The JOSE header holds `alg`, `kid` (mandatory: "a value that can be used to look up the key in a key store hosted
  by the Trust Anchor"), optional `typ` ("must be set to the value `JOSE`") and `cty` ("`json` or
  `application/json` for json payloads"), the private header parameters `http://openbanking.org.uk/iat` ("a JSON
  number representing the number of seconds from 1970-01-01T0:0:0Z"), `http://openbanking.org.uk/iss` ("a string
  that identifies the PSP") and `http://openbanking.org.uk/tan` (the Trust Anchor's domain name; for the OB
  Directory `openbanking.org.uk`), and `crit` listing exactly those three (Step 2).
- The verifier must (Process for Verifying a Signature, Step 2): accept "a valid JSON object with only the claims
  specified" in Step 2; check `typ` is JOSE if given and `cty` is the expected type; check `alg`; find the key by
  `kid`; check `iat` "has a date-time value set in the past"; check the PSP of `iss` "matches the expected PSP";
  check `tan` names a Trust Anchor it trusts; ensure "the `crit` claim does not contain additional critical
  elements"; then verify the signature (Step 3). A request that fails is refused with 400 (Specification).

What obgw decides where UK OB leaves room, or differs:

- `alg`: UK OB says PS256 only. obgw accepts ES256 and PS256, the pair FAPI 1.0 Advanced §8.6 allows, because the
  demo TPPs' registered keys are ES256 (CONTRACT §5: signed with the TPP's `private_jwk`, "its `kid` and `alg`").
  `none`, HS* and everything else are refused before any key is looked at.
- The key decides the algorithm (RFC 8725 §3.1: each key is used with exactly one algorithm). `kid` picks exactly
  one key of the client's registered JWKS (`Client.jwks`, the trust anchor obgw has); an EC P-256 key verifies
  only ES256 and an RSA key (2048 bits or more, FAPI 1.0 Baseline §5.2.2) only PS256, and a JWK `alg`, `use` or
  `key_ops` that says otherwise wins. So an attacker-chosen header cannot make a public key an HMAC secret or
  move a key to another algorithm.
- `http://openbanking.org.uk/iss` is the client id: on the OB Directory it is `{org-id}/{software-statement-id}`,
  but "the value is defined by the Trust Anchor", and obgw's trust anchor is its own client registration, where
  the client id is what identifies the TPP (and `software_id` is optional).
- `http://openbanking.org.uk/tan` must be `openbanking.org.uk` (CONTRACT §5), the one trust anchor name obgw knows.
- `http://openbanking.org.uk/iat`: UK OB asks only that it be in the past. obgw allows `CLOCK_SKEW` (30 s) of clock
  difference into the future and refuses a signature more than `MAX_AGE_SECONDS` (5 minutes) old: a payment
  request is signed just before it is sent, and a bound caps how long a captured signed request stays usable (the
  same window obgw gives `private_key_jwt` assertions). A TPP that retries later, even with the same idempotency
  key, signs again. A NumericDate may be fractional (RFC 7519 §2); booleans, strings, NaN are not numbers.
- Header parameters beyond those of Step 2 are refused ("only the claims specified"), `jku`/`jwk`/`x5u` included:
  the key comes from the registration, never from the message.

PyJWT's `api_jws` is not used: its detached-payload support exists only for `b64: false` (RFC 7797), the form
v3.1.4+ dropped, and it would refuse the OB `crit` names. The signing input is built here and checked with PyJWT's
algorithm objects (`ECAlgorithm`, `RSAPSSAlgorithm`) over keys from `from_jwk`.

Reasons (the caller maps them to UK OB error codes): `signature.missing` (no header: UK.OBIE.Signature.Missing),
`signature.malformed` (not a detached compact JWS: not three parts, a payload part, bad base64url, a header that is
not one JSON object: UK.OBIE.Signature.Malformed) and `signature.invalid` (everything else: UK.OBIE.Signature.Invalid;
`claim` names the header parameter at fault when there is one, for OBError1.Path).
"""
from __future__ import annotations

import binascii
import json
import math
import re
import time
from collections.abc import Mapping

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAPSSAlgorithm

from gateway.crypto import b64url, b64url_decode

HEADER = "x-jws-signature"
IAT = "http://openbanking.org.uk/iat"
ISS = "http://openbanking.org.uk/iss"
TAN = "http://openbanking.org.uk/tan"
CRITICAL = frozenset({IAT, ISS, TAN})
TRUST_ANCHOR = "openbanking.org.uk"
ALGORITHMS = ("ES256", "PS256")
# UK OB Step 2: the verifier accepts a header "with only the claims specified" there.
HEADER_MEMBERS = frozenset({"alg", "kid", "typ", "cty", "crit", *CRITICAL})
CONTENT_TYPES = ("json", "application/json")  # compared case-insensitively: they are MIME types (RFC 7515 §4.1.10)
MAX_AGE_SECONDS = 300
CLOCK_SKEW = 30
MIN_RSA_BITS = 2048
# A header value longer than this is not a signature (a 4096-bit PS256 one is well under 1,500 characters).
MAX_HEADER_CHARS = 8192

_ES256 = ECAlgorithm(ECAlgorithm.SHA256)
_PS256 = RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class SignatureProblem(Exception):
    """Why a signature was refused: `reason` is signature.missing, signature.malformed or signature.invalid."""

    def __init__(self, reason: str, message: str, claim: str | None = None) -> None:
        self.reason = reason
        self.message = message
        self.claim = claim  # the header parameter at fault, if one is
        super().__init__(message)


def _missing(message: str) -> SignatureProblem:
    return SignatureProblem("signature.missing", message)


def _malformed(message: str) -> SignatureProblem:
    return SignatureProblem("signature.malformed", message)


def _invalid(message: str, claim: str | None = None) -> SignatureProblem:
    return SignatureProblem("signature.invalid", message, claim)



def _b64url_decode(part: str, what: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): only the URL-safe alphabet, and only its canonical form."""
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise _malformed(f"The {what} is not base64url.")
    try:
        data = b64url_decode(part)
    except (binascii.Error, ValueError):
        raise _malformed(f"The {what} is not base64url.") from None
    if b64url(data) != part:  # stray bits in the last character: another spelling of the same bytes
        raise _malformed(f"The {what} is not canonical base64url.")
    return data


def _unique_members(pairs: list[tuple[str, object]]) -> dict:
    # RFC 7515 §4: Header Parameter names must be unique; a parser must reject duplicates or keep the last. We reject.
    header: dict = {}
    for name, value in pairs:
        if name in header:
            raise ValueError(f"duplicate member {name!r}")
        header[name] = value
    return header


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; RFC 8259 does not


def _parse(header_value: str) -> tuple[str, dict, bytes]:
    """The encoded header (as signed), the decoded header and the signature of a detached compact JWS."""
    if len(header_value) > MAX_HEADER_CHARS:
        raise _malformed(f"The {HEADER} header is too long to be a signature.")
    parts = header_value.split(".")
    if len(parts) != 3:
        raise _malformed(f"The {HEADER} header is not a compact JWS (header..signature).")
    encoded_header, payload, encoded_signature = parts
    if payload:
        raise _malformed(f"The {HEADER} header must be a detached JWS: its payload part must be empty.")
    raw_header = _b64url_decode(encoded_header, "JOSE header")
    signature = _b64url_decode(encoded_signature, "signature")
    try:
        header = json.loads(raw_header.decode("utf-8"), object_pairs_hook=_unique_members,
                            parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):  # json.JSONDecodeError is a ValueError
        raise _malformed("The JOSE header is not a JSON object.") from None
    if not isinstance(header, dict):
        raise _malformed("The JOSE header is not a JSON object.")
    return encoded_header, header, signature


def _check_header(header: Mapping) -> str:
    """The structural rules of UK OB Step 2 and RFC 7515 §4.1.11; returns the algorithm."""
    if "b64" in header:
        raise _invalid("The b64 header parameter is not used from UK OB v3.1.4 on; sign the base64url body.", "b64")
    unexpected = sorted(set(header) - HEADER_MEMBERS)
    if unexpected:
        raise _invalid(f"The JOSE header may not carry {', '.join(unexpected)}.", unexpected[0])
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _invalid(f"The alg must be one of {', '.join(ALGORITHMS)}.", "alg")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _invalid("The kid is required: it names the registered key that made the signature.", "kid")
    crit = header.get("crit")
    if (not isinstance(crit, list) or not all(isinstance(name, str) for name in crit)
            or len(crit) != len(CRITICAL) or set(crit) != CRITICAL):
        raise _invalid(f"The crit must list exactly {', '.join(sorted(CRITICAL))}.", "crit")
    for name in sorted(CRITICAL):  # RFC 7515 §4.1.11: what crit lists must be present
        if name not in header:
            raise _invalid(f"The JOSE header lacks {name}.", name)
    typ = header.get("typ")
    if typ is not None and not (isinstance(typ, str) and typ.upper() == "JOSE"):
        raise _invalid("The typ, if given, must be JOSE.", "typ")
    cty = header.get("cty")
    if cty is not None and not (isinstance(cty, str) and cty.lower() in CONTENT_TYPES):
        raise _invalid("The cty, if given, must be application/json.", "cty")
    return alg


def _verification_key(jwks: Mapping, kid: str, alg: str):
    """The one registered key named `kid`, as a key object of the algorithm it is for, which must be `alg`."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise _invalid("The client has no registered signing keys.", "kid")
    named = [k for k in keys if isinstance(k, Mapping) and k.get("kid") == kid]
    if len(named) != 1:
        raise _invalid("The kid does not name exactly one of the client's registered keys.", "kid")
    jwk = named[0]
    # RFC 7517 §4.2-4.3: a signature key (`use` sig; `key_ops`, if given, for signatures: PyJWT and other tools
    # write `sign` into the JWK a public key is published from, so `sign` counts as well as `verify`).
    ops = jwk.get("key_ops", ["verify"])
    if jwk.get("use", "sig") != "sig" or not (isinstance(ops, list) and {"sign", "verify"} & set(map(str, ops))):
        raise _invalid("The key the kid names is not registered for signatures.", "kid")
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        key_alg = "ES256"
    elif jwk.get("kty") == "RSA":
        key_alg = "PS256"
    else:
        raise _invalid("The key the kid names is of a kind obgw does not verify with.", "kid")
    if jwk.get("alg", key_alg) != key_alg or key_alg != alg:  # the key decides (RFC 8725 §3.1), never the header
        raise _invalid(f"The key the kid names is for {jwk.get('alg', key_alg)}, not {alg}.", "alg")
    try:
        key = (_ES256 if key_alg == "ES256" else _PS256).from_jwk(dict(jwk))
    except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
        raise _invalid("The key the kid names cannot be used.", "kid") from None
    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        key = key.public_key()  # a private JWK registered by mistake still verifies only as its public half
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise _invalid("The key the kid names is not a P-256 key.", "kid")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise _invalid(f"The key the kid names is shorter than {MIN_RSA_BITS} bits.", "kid")
    return (_ES256 if key_alg == "ES256" else _PS256), key


def _check_claims(header: Mapping, client_id: str, now: float) -> None:
    iat = header[IAT]
    if type(iat) not in (int, float) or not math.isfinite(iat):  # type(): True is an int but not a NumericDate
        raise _invalid(f"The {IAT} must be a NumericDate (a JSON number of seconds).", IAT)
    if iat > now + CLOCK_SKEW:
        raise _invalid(f"The {IAT} is in the future.", IAT)
    if iat < now - MAX_AGE_SECONDS - CLOCK_SKEW:
        raise _invalid(f"The signature is more than {MAX_AGE_SECONDS} s old; sign the request again.", IAT)
    if header[ISS] != client_id:
        raise _invalid(f"The {ISS} must be the client id of the TPP that sends the request.", ISS)
    if header[TAN] != TRUST_ANCHOR:
        raise _invalid(f"The {TAN} must be {TRUST_ANCHOR}.", TAN)


def verify_detached(header_value: str | None, body: bytes, jwks: Mapping, client_id: str,
                    now: float | None = None) -> dict:
    """The verified protected header of `header_value` over `body` (the bytes as received), or SignatureProblem.

    `jwks` is the TPP's registered JWKS (`Client.jwks`) and `client_id` its client id, which `iss` must be.
    """
    if header_value is None or not header_value.strip(" \t"):
        raise _missing(f"The {HEADER} header is required on this request.")
    encoded_header, header, signature = _parse(header_value.strip(" \t"))
    alg = _check_header(header)
    algorithm, key = _verification_key(jwks, header["kid"], alg)
    signing_input = encoded_header.encode("ascii") + b"." + b64url(bytes(body)).encode("ascii")
    if not algorithm.verify(signing_input, key, signature):
        raise _invalid(f"The {HEADER} does not verify over the request body with the key its kid names.")
    _check_claims(header, client_id, time.time() if now is None else now)
    return dict(header)


def sign_detached(body: bytes, private_jwk: Mapping, client_id: str, iat: int | None = None) -> str:
    """What a TPP sends as `x-jws-signature` for `body`, signed with its private JWK (ES256 P-256 or PS256 RSA).

    The algorithm is the JWK's `alg` (or its key type's: EC → ES256, RSA → PS256) and the `kid` is the JWK's own,
    which must be the one the TPP registered (`gateway.pki.make_signing_jwk` sets the RFC 7638 thumbprint).
    """
    kid = private_jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("the private JWK has no kid")
    alg = private_jwk.get("alg") or {"EC": "ES256", "RSA": "PS256"}.get(str(private_jwk.get("kty")))
    if alg not in ALGORITHMS:
        raise ValueError(f"cannot sign with {alg!r}: use an ES256 (P-256) or PS256 (RSA) key")
    key = (_ES256 if alg == "ES256" else _PS256).from_jwk(dict(private_jwk))
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError("the JWK is a public key: signing needs the private one")
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 signs with a P-256 key")
    if (alg == "ES256") != isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{alg} does not sign with a {private_jwk.get('kty')} key")
    return sign_with(body, key, kid, client_id, iat)


def sign_with(body: bytes, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str, issuer: str,
              iat: int | None = None) -> str:
    """The detached JWS of `body` with `key` (ES256 for an EC key, PS256 for RSA): a TPP's request, or the
    gateway's own answer (its token-signing key, `kid` in its JWKS, `iss` its issuer URL)."""
    header = {
        "alg": "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "PS256",
        "kid": kid,
        IAT: int(time.time()) if iat is None else iat,
        ISS: issuer,
        TAN: TRUST_ANCHOR,
        "crit": [IAT, ISS, TAN],
    }
    encoded_header = b64url(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    signing_input = f"{encoded_header}.{b64url(bytes(body))}".encode("ascii")
    signature = _ES256.sign(signing_input, key) if isinstance(key, ec.EllipticCurvePrivateKey) \
        else _PS256.sign(signing_input, key)
    return f"{encoded_header}..{b64url(signature)}"
