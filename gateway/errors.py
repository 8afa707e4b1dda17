"""Refusals, the reason catalogue, and the two error renderers (OBErrorResponse1 and OAuth 2.0 error JSON).

A stage refuses by raising; only `RenderErrors` turns a refusal into a response, and `Audit` records its reason id.

    Exception
    └── Refusal(reason, message=None, headers=None)     HTTP status and error code come from REASONS[reason]
        (no subclasses: a new refusal is one line in REASONS, so the catalogue is the whole list)

The customer pages answer a browser, not a TPP: their own refusals are `PAGE_REASONS` (a status and the page's
text, no ErrorCode), shown by `web.pages.error_page` and audited like every refusal; never raised as a Refusal.

Reason ids are `<stage>.<reason>`, stable across releases: the audit log, the metrics and the tests key on them.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Reason:
    status: int
    code: str  # UK.OBIE.* ErrorCode for resource calls; the OAuth `error` value for the authorization server
    message: str


@dataclass(frozen=True, slots=True)
class PageReason:
    status: int
    message: str  # what the page tells the customer


# OBError1.ErrorCode: the values UK OB v3.1.11 lists (`x-namespaced-enum`, the same in every API's spec file;
# tests/unit/test_errors.py compares). Any other code an answer carries is in obgw's own namespace, `OBGW.*`.
LISTED_ERROR_CODES = frozenset({
    "UK.OBIE.Field.Expected", "UK.OBIE.Field.Invalid", "UK.OBIE.Field.InvalidDate", "UK.OBIE.Field.Missing",
    "UK.OBIE.Field.Unexpected", "UK.OBIE.Header.Invalid", "UK.OBIE.Header.Missing", "UK.OBIE.Reauthenticate",
    "UK.OBIE.Resource.ConsentMismatch", "UK.OBIE.Resource.InvalidConsentStatus", "UK.OBIE.Resource.InvalidFormat",
    "UK.OBIE.Resource.NotFound", "UK.OBIE.Rules.AfterCutOffDateTime", "UK.OBIE.Rules.DuplicateReference",
    "UK.OBIE.Rules.FailsControlParameters", "UK.OBIE.Rules.ResourceAlreadyExists",  # VRP's list adds these two
    "UK.OBIE.Signature.Invalid", "UK.OBIE.Signature.InvalidClaim", "UK.OBIE.Signature.Malformed",
    "UK.OBIE.Signature.Missing", "UK.OBIE.Signature.MissingClaim", "UK.OBIE.Signature.Unexpected",
    "UK.OBIE.UnexpectedError", "UK.OBIE.Unsupported.AccountIdentifier",
    "UK.OBIE.Unsupported.AccountSecondaryIdentifier", "UK.OBIE.Unsupported.Currency", "UK.OBIE.Unsupported.Frequency",
    "UK.OBIE.Unsupported.LocalInstrument", "UK.OBIE.Unsupported.Scheme",
})
OWN_NAMESPACE = "OBGW."


def namespaced(code: str) -> str:
    """An ErrorCode a TPP may be shown: a listed UK OB value as it is; anything else moved into `OBGW.*`, never an
    invented `UK.OBIE.*` one (a bank's `UK.OBIE.Rules.InsufficientFunds` becomes `OBGW.Rules.InsufficientFunds`)."""
    if code in LISTED_ERROR_CODES or code.startswith(OWN_NAMESPACE):
        return code
    return OWN_NAMESPACE + (code.removeprefix("UK.OBIE.") if code.startswith("UK.OBIE.") else "Bank." + code)


# The catalogue: every refusal the gateway can make. UK OB v3.1.11 OBError1.ErrorCode values, and an `OBGW.*` code
# only where UK OB has none.
REASONS: Mapping[str, Reason] = {
    "identity.no_certificate": Reason(401, "UK.OBIE.Field.Missing", "A client certificate is required (mutual TLS)."),
    "identity.bad_certificate": Reason(401, "UK.OBIE.Field.Invalid", "The client certificate is not valid."),
    "route.not_found": Reason(404, "UK.OBIE.Resource.NotFound", "No such resource."),
    "route.method_not_allowed": Reason(405, "UK.OBIE.Resource.NotFound", "This method is not allowed on the resource."),
    "request.too_large": Reason(413, "UK.OBIE.Field.Invalid", "The request body is too large."),
    "request.unsupported_media_type": Reason(415, "UK.OBIE.Header.Invalid", "The request body must be "
                                             "application/json."),
    # Refused by the HTTP parser (server.py), then answered and audited through the app like any refusal.
    "request.malformed": Reason(400, "UK.OBIE.Header.Invalid", "The request is not valid HTTP/1.1."),
    "request.headers_too_large": Reason(431, "UK.OBIE.Header.Invalid", "The request's headers are too large."),
    "backend.unavailable": Reason(502, "UK.OBIE.UnexpectedError", "The bank's service could not be reached."),
    "backend.error": Reason(502, "UK.OBIE.UnexpectedError", "The bank's service failed to answer."),
    "backend.timeout": Reason(504, "UK.OBIE.UnexpectedError", "The bank's service did not answer in time."),
    "backend.rejected": Reason(400, "UK.OBIE.UnexpectedError",  # with the bank's own 4xx status
                               "The bank's service refused the call."),
    "backend.unanswered": Reason(502, "UK.OBIE.UnexpectedError",
                                 "The bank's service took the call but gave no whole answer; check its outcome."),
    "backend.busy": Reason(503, "UK.OBIE.UnexpectedError",
                           "The bank's service has as many calls in flight as it takes; try again shortly."),
    "backend.circuit_open": Reason(503, "UK.OBIE.UnexpectedError",
                                   "The bank's service is failing; calls resume after a pause."),
    # Per-TPP rate limits (limits.yaml). UK OB defines no ErrorCode for 429 (see consent.unattended_limit).
    "ratelimit.exceeded": Reason(429, "OBGW.Rules.RateLimitExceeded",
                                 "Too many calls: the TPP's rate limit is used up; see Retry-After."),
    # Requests without a client certificate, per source address (pipeline.middleware.AnonymousThrottle).
    "request.throttled": Reason(429, "OBGW.Rules.RateLimitExceeded",
                                "Too many requests without a client certificate from this address; see Retry-After."),
    "request.invalid_date": Reason(400, "UK.OBIE.Field.InvalidDate", "A date-time parameter is not valid."),
    "request.incomplete": Reason(400, "UK.OBIE.Field.Invalid", "The request body ended before its declared length."),
    "audit.unavailable": Reason(503, "UK.OBIE.UnexpectedError",
                                "The call could not be recorded in the audit log; try again later."),
    "error.unexpected": Reason(500, "UK.OBIE.UnexpectedError", "An unexpected error occurred."),
    # Access tokens at the resource stages (RFC 6750 §3.1: 401 invalid_token, 403 insufficient_scope).
    "token.missing": Reason(401, "UK.OBIE.Header.Missing", "An access token is required (Authorization: Bearer)."),
    "token.malformed": Reason(401, "UK.OBIE.Header.Invalid", "The access token is not valid."),
    "token.bad_signature": Reason(401, "UK.OBIE.Header.Invalid", "The access token's signature is not valid."),
    "token.unknown_key": Reason(401, "UK.OBIE.Header.Invalid", "The access token is signed by an unknown key."),
    "token.expired": Reason(401, "UK.OBIE.Header.Invalid", "The access token has expired."),
    "token.wrong_audience": Reason(401, "UK.OBIE.Header.Invalid", "The access token was not issued for this API."),
    "token.cnf_mismatch": Reason(401, "UK.OBIE.Header.Invalid",
                                 "The access token is bound to another client certificate."),
    "token.revoked": Reason(401, "UK.OBIE.Header.Invalid", "The access token has been revoked."),
    "token.key_revoked": Reason(401, "UK.OBIE.Header.Invalid", "The access token is signed by a revoked key."),
    # DPoP (RFC 9449 §7.1): answered with a DPoP challenge (and a DPoP-Nonce where one is asked for).
    "token.dpop_required": Reason(401, "UK.OBIE.Header.Invalid", "The access token is DPoP-bound: send it as "
                                  "Authorization: DPoP, with a DPoP proof."),
    "token.dpop_invalid": Reason(401, "UK.OBIE.Header.Invalid", "The DPoP proof is not valid."),
    "token.dpop_nonce": Reason(401, "UK.OBIE.Header.Invalid", "Use the server's DPoP nonce (DPoP-Nonce)."),
    "token.dpop_replayed": Reason(401, "UK.OBIE.Header.Invalid", "The DPoP proof has been used before."),
    "token.dpop_mismatch": Reason(401, "UK.OBIE.Header.Invalid",
                                  "The DPoP proof is signed by another key than the access token is bound to."),
    "token.too_long_lived": Reason(401, "UK.OBIE.Header.Invalid",
                                   "The access token lives longer than this server issues tokens for."),
    "token.wrong_grant": Reason(403, "UK.OBIE.Resource.InvalidConsentStatus",
                                "This call needs a token of another kind (client credentials or a consent's)."),
    "token.insufficient_scope": Reason(403, "UK.OBIE.Resource.InvalidConsentStatus",
                                       "The access token's scope does not cover this call."),
    # Consents, as the admission stage finds them (read live on every call).
    "consent.not_found": Reason(403, "UK.OBIE.Resource.InvalidConsentStatus", "The consent does not exist."),
    "consent.not_authorised": Reason(403, "UK.OBIE.Resource.InvalidConsentStatus", "The consent is not authorised."),
    "consent.expired": Reason(403, "UK.OBIE.Resource.InvalidConsentStatus", "The consent has expired."),
    "consent.permission_missing": Reason(403, "UK.OBIE.Resource.InvalidConsentStatus",
                                         "The consent does not grant the permission this call needs."),
    "consent.account_not_selected": Reason(403, "UK.OBIE.Resource.NotFound",
                                           "The account is not one the customer selected for this consent."),
    # UK OB defines no ErrorCode for 429; OBError1's x-namespaced-enum lets a bank use its own namespace.
    "consent.unattended_limit": Reason(429, "OBGW.Rules.UnattendedAccessLimit",
                                       "The consent's allowance of calls without the customer present is used up."),
    # Plans (plans.yaml): a hard monthly quota of a product's billable calls; Retry-After: the next UTC month.
    "usage.quota_exceeded": Reason(429, "OBGW.Rules.UsageQuotaExceeded",
                                   "The TPP's plan allows no more billable calls of this API product this month; "
                                   "see Retry-After."),
    "minimise.failed": Reason(502, "UK.OBIE.UnexpectedError", "The bank's answer could not be checked against the "
                              "consent; nothing of it was sent."),
    "consent.field_missing": Reason(400, "UK.OBIE.Field.Missing", "The consent request lacks a required field."),
    "consent.field_invalid": Reason(400, "UK.OBIE.Field.Invalid", "The consent request is not valid."),
    "consent.invalid_date": Reason(400, "UK.OBIE.Field.InvalidDate", "A date in the consent request is not valid."),
    "request.invalid_json": Reason(400, "UK.OBIE.Resource.InvalidFormat", "The body is not a JSON object."),
    # VRP ControlParameters, held by the gateway before the bank (UK OB VRP: UK.OBIE.Rules.FailsControlParameters).
    "vrp.not_yet_valid": Reason(400, "UK.OBIE.Rules.FailsControlParameters", "The consent is not valid yet."),
    "vrp.expired": Reason(400, "UK.OBIE.Rules.FailsControlParameters", "The consent's validity has ended."),
    "vrp.currency_mismatch": Reason(400, "UK.OBIE.Rules.FailsControlParameters",
                                    "The payment is not in the consent's currency."),
    "vrp.amount_invalid": Reason(400, "UK.OBIE.Rules.FailsControlParameters", "The amount must be more than zero."),
    "vrp.amount_over_maximum": Reason(400, "UK.OBIE.Rules.FailsControlParameters",
                                      "The payment is over the consent's MaximumIndividualAmount."),
    "vrp.limit_exceeded": Reason(400, "UK.OBIE.Rules.FailsControlParameters",
                                 "The payment would pass one of the consent's PeriodicLimits."),
    "vrp.claim_exists": Reason(503, "UK.OBIE.UnexpectedError", "The payment could not be held; retry."),
    "request.field_missing": Reason(400, "UK.OBIE.Field.Missing", "The request lacks a required field."),
    "request.field_invalid": Reason(400, "UK.OBIE.Field.Invalid", "A field of the request is not valid."),
    "request.consent_mismatch": Reason(400, "UK.OBIE.Resource.ConsentMismatch",
                                       "The request names another consent than the access token's."),
    "payment.consent_mismatch": Reason(400, "UK.OBIE.Resource.ConsentMismatch",
                                       "The payment is not the one the customer consented to."),
    "payment.in_progress": Reason(400, "UK.OBIE.Resource.InvalidConsentStatus",
                                  "A payment under this consent is being made or was made already."),
    "payment.not_found": Reason(403, "UK.OBIE.Resource.NotFound", "No such payment under this consent."),
    "idempotency.missing": Reason(400, "UK.OBIE.Header.Missing", "x-idempotency-key is required."),
    "idempotency.invalid": Reason(400, "UK.OBIE.Header.Invalid", "x-idempotency-key must be 1 to 40 characters."),
    "idempotency.mismatch": Reason(400, "UK.OBIE.Header.Invalid",
                                   "x-idempotency-key was used already for another request."),
    "idempotency.pending": Reason(409, "UK.OBIE.Header.Invalid", "A request with this x-idempotency-key has not "
                                  "finished (or its outcome is unknown); check the resource's status."),
    "signature.missing": Reason(400, "UK.OBIE.Signature.Missing", "x-jws-signature is required."),
    # CONTRACT §5: a bad signature is UK.OBIE.Signature.Invalid, whether it cannot be parsed or does not verify.
    "signature.malformed": Reason(400, "UK.OBIE.Signature.Invalid", "x-jws-signature is not a detached JWS."),
    "signature.invalid": Reason(400, "UK.OBIE.Signature.Invalid", "x-jws-signature does not verify."),
    "payment.currency_unsupported": Reason(400, "UK.OBIE.Unsupported.Currency", "The currency is not supported."),
    "payment.scheme_unsupported": Reason(400, "UK.OBIE.Unsupported.Scheme", "The account scheme is not supported."),
    "consent.unknown": Reason(400, "UK.OBIE.Resource.NotFound", "No such consent."),
    # A file-payment consent's file (consents/payment_file.py): not the one the consent describes, or unreadable.
    "file.mismatch": Reason(400, "UK.OBIE.Field.Invalid", "The file does not match its consent."),
    "file.invalid": Reason(400, "UK.OBIE.Resource.InvalidFormat", "The file is not a payment file of its type."),
    "file.unsupported": Reason(400, "UK.OBIE.Field.Invalid", "This bank does not take files of this type."),
    "file.not_uploaded": Reason(400, "UK.OBIE.Resource.NotFound", "No file has been uploaded to this consent."),
    "consent.conflict": Reason(400, "UK.OBIE.Resource.InvalidConsentStatus",
                               "The consent's status does not allow this."),
    "admission.unavailable": Reason(503, "UK.OBIE.UnexpectedError",
                                    "The consent could not be checked; try again later."),
    "store.unavailable": Reason(503, "UK.OBIE.UnexpectedError",
                                "The gateway's store cannot be reached; nothing was done. Try again later."),
    # The Events API (events/api.py): one event subscription per TPP (UK OB Event Subscription: "An ASPSP must
    # respond with a 409 error if an event-subscription exists for that TPP"), a CallbackUrl SSRF rules refuse.
    "events.subscription_exists": Reason(409, "UK.OBIE.Rules.ResourceAlreadyExists",
                                         "An event subscription exists for this TPP already; change it with PUT."),
    "events.subscription_unknown": Reason(404, "UK.OBIE.Resource.NotFound", "No such event subscription."),
    "events.callback_refused": Reason(400, "UK.OBIE.Field.Invalid",
                                      "The CallbackUrl is not one the bank may send event notifications to."),
}

# The authorization server answers in OAuth 2.0 error JSON (RFC 6749 §5.2) rendered by Authlib itself; these are
# the reason ids its refusals are audited under, one per standard `error` code (RFC 6749, 7009, 7591, 9101, 9126).
OAUTH_ERRORS = (
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "access_denied", "unsupported_response_type", "unsupported_token_type", "invalid_request_uri",
    "invalid_redirect_uri", "invalid_client_metadata", "invalid_software_statement", "unapproved_software_statement",
    "invalid_token", "server_error", "invalid_request_object", "insufficient_scope", "invalid_dpop_proof",
    "use_dpop_nonce", "login_required",
)
OAUTH_UNFORESEEN = "oauth.error"  # the reason of an OAuth error code not in OAUTH_ERRORS (see oauth_reason)

# The customer pages' own refusals (gateway/web). A step may show its own text (or status) instead, as a Refusal may.
PAGE_REASONS: Mapping[str, PageReason] = {
    "web.login_failed": PageReason(401, "The username or password is not right."),
    # Refused before the bank is asked (web.login): the username is locked, or its source address sent too many.
    "web.login_locked": PageReason(429, "Too many failed attempts: try again later."),
    "web.login_throttled": PageReason(429, "Too many failed log-ins from your network: try again later."),
    "web.session_missing": PageReason(400, "Your session has expired. Go back to the app and start again."),
    "web.csrf_invalid": PageReason(403, "This form has expired. Go back and try again."),
    # The second factor (web.login, web.authorize): a wrong one-time code; too many of them lock the customer's codes.
    "web.otp_failed": PageReason(401, "The code is not right. Enter the code your authenticator app shows now."),
    "web.otp_locked": PageReason(429, "Too many wrong codes: try again later."),
    # Dynamic linking (PSD2 RTS Art. 5): what the customer authenticated is not what they would now agree to.
    "web.sca_relink": PageReason(409, "What you are asked to agree to has changed since you confirmed it. Log in "
                                      "again to confirm it as it is now."),
}

# Each attempt to notify a TPP of a revoked consent is audited under a `notify.*` reason, catalogued with the
# decision it stands for in `consents.notify.REASONS` (they are outcomes of a delivery, not refusals of a call).


BEARER_CHALLENGE = 'Bearer error="invalid_token"'


def token_refusal(reason: str, message: str | None = None, nonce: str | None = None) -> Refusal:
    """RFC 6750 §3: a 401 for a bad token carries the Bearer challenge (RFC 7235 §3.1: every 401 has one); one
    about a DPoP proof the DPoP challenge (RFC 9449 §7.1), with the server's `nonce` when it asks for one (§9)."""
    if REASONS[reason].status != 401:
        return Refusal(reason, message)
    if not reason.startswith("token.dpop_"):
        return Refusal(reason, message, headers={"WWW-Authenticate": BEARER_CHALLENGE})
    error = "use_dpop_nonce" if reason == "token.dpop_nonce" else "invalid_dpop_proof"
    headers = {"WWW-Authenticate": f'DPoP error="{error}", algs="ES256 PS256"'}
    return Refusal(reason, message, headers=headers | ({"DPoP-Nonce": nonce} if nonce else {}))


def oauth_reason(error: str) -> str:
    """The audit reason id of an OAuth error code; an unforeseen code is still recorded, as `oauth.error`."""
    return f"oauth.{error}" if error in OAUTH_ERRORS else OAUTH_UNFORESEEN


# Every reason id a refused call can be audited under: the catalogue's, the pages' and the OAuth errors'.
REFUSAL_REASONS = frozenset((*REASONS, *PAGE_REASONS, *map(oauth_reason, OAUTH_ERRORS), OAUTH_UNFORESEEN))


def catalogued(reason: str) -> str:
    """`reason` if a refused call may be audited under it; a KeyError otherwise (a programming error, as in Refusal)."""
    if reason not in REFUSAL_REASONS:
        raise KeyError(reason)
    return reason


class Refusal(Exception):
    """Stop the request with the catalogued status and code; `message` replaces the catalogue's text for detail."""

    def __init__(self, reason: str, message: str | None = None, headers: Mapping[str, str] | None = None,
                 path: str | None = None, status: int | None = None) -> None:
        """`status` overrides the catalogue's where the status is another party's (the bank's own 4xx)."""
        self.entry = REASONS[reason]  # a KeyError here is a programming error: every reason is catalogued
        self.reason = reason
        self.message = message or self.entry.message
        self.headers = dict(headers or {})
        self.path = path  # OBError1.Path: the field or header at fault
        self._status = status
        super().__init__(f"{reason}: {self.message}")

    @property
    def status(self) -> int:
        return self._status or self.entry.status


OB_TEXT_MAX = 500  # OBError1 Message and Path: maxLength 500


def _fit(text: str) -> str:
    return text if len(text) <= OB_TEXT_MAX else text[:OB_TEXT_MAX - 1] + "…"


def ob_error_body(refusal: Refusal, error_id: str | None = None) -> bytes:
    """UK OB v3.1 `OBErrorResponse1`: Code is the HTTP status as text, Id a reference the TPP can quote to the bank.
    Message and Path are cut to the schema's 500 characters (a Path may name keys the TPP sent)."""
    error = {"ErrorCode": refusal.entry.code, "Message": _fit(refusal.message)}
    if refusal.path:
        error["Path"] = _fit(refusal.path)
    return orjson.dumps({
        "Code": str(refusal.status),
        "Id": error_id or str(uuid.uuid4()),
        "Message": refusal.entry.message,
        "Errors": [error],
    })


def oauth_error_body(refusal: Refusal) -> bytes:
    """RFC 6749 §5.2 error response, for a gateway refusal (oversized body, audit down) on an OAuth endpoint."""
    error = "server_error" if refusal.status >= 500 else "invalid_request"
    return orjson.dumps({"error": error, "error_description": refusal.message})
