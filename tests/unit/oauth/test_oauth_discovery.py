"""Discovery metadata (RFC 8414, OIDC Discovery): what a conformant TPP library reads before it talks to us."""
from gateway.oauth.client_auth import ASSERTION_ALGORITHMS
from gateway.oauth.discovery import metadata

ISSUER = "https://127.0.0.1:8443"


def test_every_endpoint_taking_private_key_jwt_names_its_assertion_algorithms():
    # RFC 8414 §2: *_endpoint_auth_signing_alg_values_supported for each endpoint whose methods include
    # private_key_jwt; the token endpoint had it, revocation and introspection did not.
    document = metadata(ISSUER)
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in document[f"{endpoint}_endpoint_auth_methods_supported"]
        assert document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"] == list(ASSERTION_ALGORITHMS)
        assert "none" not in document[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]


def test_both_uk_open_banking_acr_values_are_advertised():
    assert set(metadata(ISSUER)["acr_values_supported"]) == {"urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"}
