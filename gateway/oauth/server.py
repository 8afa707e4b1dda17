"""build_authorization_server(): the Authlib server and every registration, so each FAPI choice is on one screen.

Authlib supplies the protocol; obgw supplies, by registration only, what it lacks or what FAPI changes:
client authentication by `tls_client_auth` and `private_key_jwt` (and nothing else), PAR, the PAR-only code grant
with PKCE S256, certificate-bound JWT tokens, RFC 9207 `iss` in every authorization response, revocation and
introspection. Authlib is synchronous: it runs in a worker thread with the sync Redis client, off the proxied path.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)
from authlib.oauth2.rfc9207 import IssuerParameter

from gateway.audit.customers import CustomerIds
from gateway.consents.model import Status, from_record
from gateway.crypto import pseudonym
from gateway.oauth import dpop, grants
from gateway.oauth.client_auth import PrivateKeyJwt, TlsClientAuth
from gateway.oauth.discovery import PATHS
from gateway.oauth.introspection import Introspection
from gateway.oauth.models import RESOURCE_SCOPES, AccessToken, Client, RefreshToken
from gateway.oauth.par import PushedAuthorizationEndpoint
from gateway.oauth.revocation import Revocation
from gateway.oauth.signing_keys import KeyEncryptionKey, SigningKeys
from gateway.oauth.tokens import (
    GRANT_CLAIM,
    INTENT_CLAIM,
    AccessTokenVerifier,
    TokenIssuer,
    TokenRejected,
)
from gateway.settings import Settings
from gateway.store.clients import ClientStore
from gateway.store.consent_rules import ConsentRules
from gateway.store.consents import ConsentStore
from gateway.store.oauth import AuthorizationStore

KEY_OVERLAP_MARGIN = 60


class InvalidDpopProof(OAuth2Error):
    """RFC 9449 §5.2: the token request's DPoP proof is missing or not good."""
    error = "invalid_dpop_proof"


class UseDpopNonce(OAuth2Error):
    """RFC 9449 §8: the proof must carry the server's nonce, given in the DPoP-Nonce header."""
    error = "use_dpop_nonce"

    def __init__(self, nonce: str) -> None:
        super().__init__(description="Retry with the server's DPoP nonce (DPoP-Nonce).")
        self.nonce = nonce

    def get_headers(self):
        return [*super().get_headers(), (dpop.NONCE_HEADER, self.nonce)]
SUBJECT_SECRET = "token subjects"  # the sealed secret's label (AES-GCM associated data)
SUBJECT_SECRET_BYTES = 32  # seconds a retired key outlives the longest-lived token it can have signed


@dataclass
class OAuthResponse:
    """What Authlib's `handle_response` produces; `location` is what the RFC 9207 extension rewrites."""
    status: int
    body: object
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]


class Issuer(IssuerParameter):
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class GatewayAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, redis, live=None) -> None:
        """`redis` is the sync client Authlib's threads use; `live` the worker's async client, for the stores' async
        twins the request path uses (consents.api, payments)."""
        super().__init__(scopes_supported=["openid", *RESOURCE_SCOPES])
        self.settings = settings
        self.issuer = settings.issuer_url
        self.clients = ClientStore(redis, live=live)
        self.consents = ConsentStore(redis, CustomerIds.from_file(settings.audit_key_file), live=live)
        self.consent_rules = ConsentRules(redis)
        self.store = AuthorizationStore(redis)
        self.kek = KeyEncryptionKey.load(settings.key_encryption_key_file)
        self.keys = SigningKeys(self.store, overlap=settings.access_token_seconds + KEY_OVERLAP_MARGIN, kek=self.kek)
        self.audience = resource_audience(self.issuer)
        self.tokens = TokenIssuer(self.keys, self.store, self.issuer, self.audience, settings.access_token_seconds,
                                  settings.refresh_token_seconds)
        self.verifier = AccessTokenVerifier(self.issuer, self.audience, settings.access_token_seconds)
        self._pseudonym_secret: bytes | None = None
        # DPoP server nonces: the same on every worker and node (derived from the key-encryption key's file).
        self.dpop_nonces = dpop.Nonces(self.kek.derive(b"obgw dpop nonces"))

    def pseudonym(self, customer_id: str) -> str:
        if self._pseudonym_secret is None:
            self._pseudonym_secret = self._subject_secret()
        return pseudonym(self._pseudonym_secret, customer_id)

    def _subject_secret(self) -> bytes:
        """The key of the token subjects (`sub`): the same for every worker and restart, kept in Redis sealed under
        the key-encryption key, so a Redis dump cannot test guessed customer ids against a token's `sub`. One an
        older version stored in clear (32 raw bytes) is sealed in place."""
        stored = self.store.pseudonym_secret(self.kek.seal_bytes(SUBJECT_SECRET, secrets.token_bytes(32)).encode())
        if len(stored) == SUBJECT_SECRET_BYTES:
            self.store.replace_pseudonym_secret(stored, self.kek.seal_bytes(SUBJECT_SECRET, stored).encode())
            return stored
        return self.kek.open_bytes(SUBJECT_SECRET, stored.decode())

    # Authlib's storage and framework hooks
    def query_client(self, client_id):
        document = self.clients.get(client_id) if isinstance(client_id, str) else None
        client = Client.from_document(document) if document else None
        return client if client is not None and client.active else None

    def save_token(self, token, request):
        """Access tokens are self-contained JWTs and refresh tokens are stored as they are issued; what is left is
        to remember that a code has given tokens, so that its replay revokes them (RFC 6749 §4.1.2)."""
        if request.authorization_code is not None:
            self.store.mark_code_redeemed(request.form["code"], request.client.client_id,
                                          request.authorization_code.record["grant_id"],
                                          self.settings.refresh_token_seconds)

    def create_oauth2_request(self, request):
        return request  # already adapted (oauth.requests), body read asynchronously

    def create_json_request(self, request):
        return request

    def handle_response(self, status, body, headers):
        return OAuthResponse(status, body, list(headers))

    def send_signal(self, name, *args, **kwargs):
        """No signal listeners: audit records are written by the Audit middleware for every call."""

    # Consents, as the grants see them
    def consent_for_request(self, request, redirect_uri: str):
        """The consent an authorization request names: this client's, awaiting authorisation, matching the scope."""
        consent_id = request.payload.data.get("consent_id")
        if not consent_id:
            raise InvalidRequestError("consent_id is required (the consent to authorise).", redirect_uri=redirect_uri)
        record = self.consents.get(request.client.client_id, consent_id)
        if record is None:
            raise InvalidRequestError("Unknown consent_id.", redirect_uri=redirect_uri)
        consent = from_record(record)
        # A consent's tokens carry its own scope only (plus openid): an account-access consent never pays.
        if set(request.scope.split()) - {"openid"} != {consent.kind.scope}:
            raise InvalidScopeError(f"A {consent.kind} consent goes with scope {consent.kind.scope} (and openid).",
                                    redirect_uri=redirect_uri)
        if consent.status is not Status.AWAITING_AUTHORISATION or consent.expired():
            raise InvalidRequestError("The consent is not awaiting authorisation.", redirect_uri=redirect_uri)
        request.consent = consent
        return consent

    def sender_binding(self, request, client: Client) -> dict[str, str]:
        """The `cnf` of the tokens this token request gets: the DPoP key its proof proves, for a client registered
        for DPoP (the server's nonce required, the proof used once), else the certificate presented."""
        if not client.dpop_bound_access_tokens:
            return {"x5t#S256": request.certificate.thumbprint}
        proofs = [v for k, v in request.headers.items() if k.lower() == dpop.HEADER]
        if len(proofs) != 1:
            raise InvalidDpopProof("A DPoP proof (one DPoP header) is required: the client is registered for DPoP.")
        try:
            proof = dpop.check_proof(proofs[0], "POST", self.issuer + PATHS["token_endpoint"],
                                     nonces=self.dpop_nonces, nonce_required=True)
        except dpop.ProofError as refused:
            if refused.nonce:
                raise UseDpopNonce(self.dpop_nonces.current()) from None
            raise InvalidDpopProof(str(refused)) from None
        if not self.store.claim_dpop_proof(client.client_id, proof.jti, dpop.REPLAY_SECONDS):
            raise InvalidDpopProof("The DPoP proof has been used before.")
        return {"jkt": proof.jkt}

    def consent_usable(self, client_id: str, consent_id: str, grant_id: str | None) -> bool:
        """This client's, Authorised, in date, and by the authorisation `grant_id` (a second, losing approval's code
        never works): decided by the Admit script's own rule on Redis's clock (store/consent_rules.py), as for a
        route that does not read a paid payment: a Consumed consent's tokens are neither refreshed nor active."""
        return self.consent_rules.refusal(client_id, consent_id, grant_id) is None

    # Tokens, as revocation and introspection see them
    def find_token(self, value: str, hint: str | None, client: Client):
        """An access token (any client's: the caller checks ownership) or this client's refresh token, else None."""
        if hint != "refresh_token" and value.count(".") == 2:
            token = self.access_token(value)
            if token is not None or hint == "access_token":
                return token
        record = self.store.refresh_token(client.client_id, value)
        if record is None:
            return None
        revoked = (self.store.is_revoked(client.client_id, None, record["grant_id"])
                   or not self.consent_usable(client.client_id, record["consent_id"], record["grant_id"]))
        return RefreshToken(value, record, revoked=revoked)

    def access_token(self, value: str) -> AccessToken | None:
        """A JWT access token this server signed and that has not expired (revoked or not), else None."""
        try:
            claims = self.verifier.verify(value, self.keys.ring().verification_key(self.verifier.kid_of(value)))
        except TokenRejected:
            return None
        client_id = claims["client_id"]
        revoked = self.store.is_revoked(client_id, claims["jti"], claims.get(GRANT_CLAIM))
        if INTENT_CLAIM in claims:
            revoked = revoked or not self.consent_usable(client_id, claims[INTENT_CLAIM], claims.get(GRANT_CLAIM))
        return AccessToken(value, claims, revoked=revoked)


def resource_audience(issuer: str) -> str:
    """RFC 9068 §3: `aud` names the resource server; here, the gateway's Open Banking API base."""
    return issuer + "/open-banking/v3.1"


def build_authorization_server(settings: Settings, redis, live=None) -> GatewayAuthorizationServer:
    server = GatewayAuthorizationServer(settings, redis, live)
    server.register_client_auth_method(TlsClientAuth.name, TlsClientAuth())
    server.register_client_auth_method(PrivateKeyJwt.name, PrivateKeyJwt(server.issuer, server.store))
    server.register_grant(grants.PushedAuthorizationCode, [grants.S256CodeChallenge(required=True)])
    server.register_grant(grants.ClientCredentials)
    server.register_grant(grants.RefreshTokenGrant)
    server.register_endpoint(PushedAuthorizationEndpoint)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    server.register_extension(Issuer(server.issuer))
    return server
