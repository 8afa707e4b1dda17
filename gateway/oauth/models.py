"""What Authlib's grants and endpoints hold: the registered client, a code, a refresh token, the grantee.

A client is stored as a plain JSON document (`store.clients`); `Client` is its read-only view with the checks
Authlib asks of it (`ClientMixin`). Roles decide scopes: AISP → `accounts`, PISP → `payments` (UK OB roles).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from cryptography import x509
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from gateway.call import ClientCertificate

ROLES = ("AISP", "PISP", "CBPII")
ROLE_SCOPES = {"AISP": "accounts", "PISP": "payments", "CBPII": "fundsconfirmations"}
RESOURCE_SCOPES = tuple(ROLE_SCOPES.values())  # what a client-credentials token may be for
AUTH_METHODS = ("tls_client_auth", "private_key_jwt")  # FAPI 1 Advanced §5.2.2-14: nothing else
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


@dataclass(frozen=True)
class Client(ClientMixin):
    client_id: str
    client_name: str
    roles: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    auth_methods: tuple[str, ...]
    cert_thumbprints: tuple[str, ...]    # RFC 8705 x5t#S256 of each registered transport certificate (renewals overlap)
    subject_dn: str | None               # RFC 8705 §2.1.2 tls_client_auth_subject_dn (RFC 4514 string) ...
    issuer_dn: str | None                # ... pinned together with its issuer
    jwks: Mapping = field(default_factory=lambda: {"keys": []})
    status: str = "active"
    software_id: str | None = None
    created_at: int = 0
    origin: str = "cli"                  # "cli" (obgw clients add) or "dcr" (RFC 7591)
    notification_url: str | None = None  # where the TPP takes event notifications (a revoked consent)
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: its tokens are bound to a DPoP key, not its certificate

    @classmethod
    def from_document(cls, document: Mapping) -> Client:
        """The client of a stored document; one written before clients could hold several certificates has the one
        `cert_thumbprint`."""
        legacy = document.get("cert_thumbprint")
        return cls(
            client_id=document["client_id"], client_name=document["client_name"], roles=tuple(document["roles"]),
            redirect_uris=tuple(document["redirect_uris"]), auth_methods=tuple(document["auth_methods"]),
            cert_thumbprints=tuple(document.get("cert_thumbprints") or ([legacy] if legacy else [])),
            subject_dn=document.get("subject_dn"),
            issuer_dn=document.get("issuer_dn"), jwks=document.get("jwks") or {"keys": []},
            status=document.get("status", "active"), software_id=document.get("software_id"),
            created_at=document.get("created_at", 0), origin=document.get("origin", "cli"),
            notification_url=document.get("notification_url"),
            dpop_bound_access_tokens=bool(document.get("dpop_bound_access_tokens")))

    def to_document(self) -> dict:
        return {
            "client_id": self.client_id, "client_name": self.client_name, "roles": list(self.roles),
            "redirect_uris": list(self.redirect_uris), "auth_methods": list(self.auth_methods),
            "cert_thumbprints": list(self.cert_thumbprints), "subject_dn": self.subject_dn, "issuer_dn": self.issuer_dn,
            "jwks": dict(self.jwks), "status": self.status, "software_id": self.software_id,
            "created_at": self.created_at, "origin": self.origin, "notification_url": self.notification_url,
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
        }

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset({"openid", *(ROLE_SCOPES[r] for r in self.roles if r in ROLE_SCOPES)})

    @property
    def software(self) -> str | None:
        """The software this client is (its software_id, else the common name of its certificates): what DCR refuses
        once the client is disabled or deleted."""
        return self.software_id or (common_name(self.subject_dn) if self.subject_dn else None)

    def matches_certificate(self, certificate: ClientCertificate | None) -> bool:
        """RFC 8705 §2.1: the presented certificate is a registered one (by thumbprint, or subject DN + issuer).
        A client may hold several, so a renewed certificate works alongside the old one until that expires."""
        if certificate is None:
            return False
        if self.cert_thumbprints:
            return certificate.thumbprint in self.cert_thumbprints
        return (self.subject_dn is not None and certificate.subject == self.subject_dn
                and certificate.issuer == self.issuer_dn)

    # Authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # FAPI: the redirect_uri is always explicit

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return None
        wanted = scope.split()
        return " ".join(s for s in wanted if s in self.scopes) if set(wanted) <= self.scopes else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact string match (RFC 9700 §4.1.1)

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no client ever has a secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return self.active and method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return self.active and grant_type in GRANT_TYPES


@dataclass(frozen=True)
class Grantee:
    """The customer behind a code or refresh token, and what they granted."""
    subject: str                          # pseudonym: what tokens name the customer by
    consent_id: str
    grant_id: str                         # one per authorisation; revoking it revokes every token it produced
    auth_time: int
    nonce: str | None = None
    sca: bool = False                     # strong customer authentication happened (a second factor): acr sca


@dataclass(frozen=True)
class AuthorizationCode(AuthorizationCodeMixin):
    record: Mapping

    def get_redirect_uri(self) -> str:
        return self.record["redirect_uri"]

    def get_scope(self) -> str:
        return self.record["scope"]

    @property
    def code_challenge(self) -> str:
        return self.record["code_challenge"]

    @property
    def code_challenge_method(self) -> str:
        return self.record["code_challenge_method"]

    @property
    def grantee(self) -> Grantee:
        r = self.record
        return Grantee(r["subject"], r["consent_id"], r["grant_id"], r["auth_time"], r.get("nonce"),
                       r.get("sca", False))


@dataclass(frozen=True)
class RefreshToken(TokenMixin):
    token: str
    record: Mapping
    revoked: bool = False

    @property
    def client_id(self) -> str:
        return self.record["client_id"]

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.record["client_id"]

    def get_scope(self) -> str:
        return self.record["scope"]

    def get_expires_in(self) -> int:
        return max(0, self.record["exp"] - int(time.time()))

    def is_expired(self) -> bool:
        return self.record["exp"] <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked

    @property
    def grantee(self) -> Grantee:
        r = self.record
        return Grantee(r["subject"], r["consent_id"], r["grant_id"], r["auth_time"],
                       sca=r.get("sca", False))


@dataclass(frozen=True)
class AccessToken(TokenMixin):
    """A verified JWT access token, as revocation and introspection see it."""
    token: str
    claims: Mapping
    revoked: bool = False

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.claims["client_id"]

    def get_scope(self) -> str:
        return self.claims.get("scope", "")

    def get_expires_in(self) -> int:
        return max(0, self.claims["exp"] - int(time.time()))

    def is_expired(self) -> bool:
        return self.claims["exp"] <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


def common_name(subject: str) -> str | None:
    """The CN of an RFC 4514 distinguished name (UK OB: a TPP certificate's CN is its software_id)."""
    names = x509.Name.from_rfc4514_string(subject).get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
