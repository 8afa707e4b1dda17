"""Authorization server metadata (RFC 8414) and OpenID Connect Discovery 1.0 §3, with the FAPI and RFC 9126,
8705, 9207 and 9101 fields and JARM's: what a TPP's library reads to talk to this server unmodified."""
from __future__ import annotations

from gateway.oauth import dpop, jarm
from gateway.oauth.client_auth import ASSERTION_ALGORITHMS
from gateway.oauth.models import AUTH_METHODS, RESOURCE_SCOPES
from gateway.oauth.par import PROMPTS
from gateway.oauth.request_objects import ALGORITHMS as REQUEST_OBJECT_ALGORITHMS
from gateway.oauth.signing_keys import ALGORITHM

PATHS = {
    "authorization_endpoint": "/oauth2/authorize",
    "token_endpoint": "/oauth2/token",
    "pushed_authorization_request_endpoint": "/oauth2/par",
    "revocation_endpoint": "/oauth2/revoke",
    "introspection_endpoint": "/oauth2/introspect",
    "registration_endpoint": "/oauth2/register",
    "jwks_uri": "/oauth2/jwks",
    "userinfo_endpoint": "/oauth2/userinfo",
}


def metadata(issuer: str) -> dict:
    urls = {name: issuer + path for name, path in PATHS.items()}
    return {
        "issuer": issuer,
        **urls,
        "scopes_supported": ["openid", *RESOURCE_SCOPES],
        "response_types_supported": ["code"],
        "response_modes_supported": list(jarm.MODES),
        # JARM: the authorization response as a JWT signed with the token-signing key.
        "authorization_signing_alg_values_supported": [ALGORITHM],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # RFC 8414 §2: each endpoint that takes private_key_jwt names the algorithms its assertions may use.
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        # RFC 9701: introspection answered as a signed JWT on request (Accept: application/token-introspection+jwt).
        "introspection_signing_alg_values_supported": [ALGORITHM],
        "code_challenge_methods_supported": ["S256"],
        "require_pushed_authorization_requests": True,
        "tls_client_certificate_bound_access_tokens": True,
        # RFC 9449 §5.1: DPoP instead, for a client registered with dpop_bound_access_tokens.
        "dpop_signing_alg_values_supported": list(dpop.ALGORITHMS),
        "authorization_response_iss_parameter_supported": True,
        # RFC 9101 request objects, pushed through PAR (the only way in); the UK OB intent id as a requested claim.
        "claims_parameter_supported": True,
        "request_parameter_supported": True,
        "request_object_signing_alg_values_supported": list(REQUEST_OBJECT_ALGORITHMS),
        "request_uri_parameter_supported": False,
        "claims_supported": ["sub", "acr", "auth_time", "openbanking_intent_id"],
        "prompt_values_supported": sorted(PROMPTS),
        # UK OB security profile: every authorisation is strong (password and one-time code): sca; ca only on
        # refreshes of grants made before SCA was required.
        "acr_values_supported": ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"],
    }
