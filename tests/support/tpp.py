"""A TPP built on Authlib's own OAuth 2.0 client (httpx), over real mutual TLS, and a customer's browser.

    tpp = Tpp(gateway.base, pki, "tpp-demo", auth="private_key_jwt")
    token = tpp.consent_token(["ReadAccountsBasic"])           # consent → PAR → login → approve → code → token
    tpp.get("/open-banking/v3.1/aisp/accounts", token)

Authlib is used as a TPP would: `OAuth2Client` with `PrivateKeyJWT` for private_key_jwt, and for tls_client_auth
the client_id-only encoding the method prescribes (RFC 8705 §2.1), registered through the client's own hook.

The customer logs in with their password and then the one-time code of their authenticator app (RFC 6238,
support.authenticator).
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.auth import encode_none
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.jwk import ECKey
from support.authenticator import next_to_now, one_time_code
from support.forms import forms, only_form
from support.gateway import client_context
from support.openapi import assert_conforms

from gateway.payments.jws import sign_detached

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
CONSENTS = "/open-banking/v3.1/aisp/account-access-consents"
PAYMENT_CONSENTS = "/open-banking/v3.1/pisp/domestic-payment-consents"
FUNDS_CONSENTS = "/open-banking/v3.1/cbpii/funds-confirmation-consents"
PAYMENTS = "/open-banking/v3.1/pisp/domestic-payments"
CUSTOMER_PRESENT = {"x-fapi-customer-ip-address": "198.51.100.7"}
ALL_ACCOUNT_PERMISSIONS = [
    "ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", "ReadBeneficiariesBasic", "ReadBeneficiariesDetail",
    "ReadDirectDebits", "ReadStandingOrdersBasic", "ReadStandingOrdersDetail", "ReadScheduledPaymentsBasic",
    "ReadScheduledPaymentsDetail", "ReadStatementsBasic", "ReadStatementsDetail", "ReadTransactionsBasic",
    "ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits", "ReadProducts", "ReadOffers",
    "ReadParty", "ReadPartyPSU", "ReadPAN"]


def domestic_initiation(amount: str = "12.34", reference: str = "INV-0042") -> dict:
    """A domestic payment to a utility (UK OB OBWriteDomestic2 Initiation), as the consent and the payment carry it."""
    return {"InstructionIdentification": secrets.token_hex(8), "EndToEndIdentification": secrets.token_hex(8),
            "InstructedAmount": {"Amount": amount, "Currency": "GBP"},
            "CreditorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "08080021325698",
                                "Name": "ACME Utilities"},
            "RemittanceInformation": {"Reference": reference}}


@dataclass
class Pushed:
    request_uri: str
    state: str
    code_verifier: str


class Tpp:
    def __init__(self, base: str, pki: Path, name: str = "tpp-demo", auth: str = "tls_client_auth",
                 cert_of: str | None = None) -> None:
        """`cert_of` presents another TPP's certificate (to show it is refused)."""
        registration = json.loads((pki / f"{name}.json").read_text())
        self.base, self.pki, self.name = base, pki, name
        self.client_id, self.redirect_uri = registration["client_id"], registration["redirect_uri"]
        holder = cert_of or name
        self.context = client_context(pki / "ca.pem", pki / f"{holder}.pem", pki / f"{holder}.key")
        self.http = httpx.Client(verify=self.context, timeout=15)
        self.metadata = self.http.get(base + "/.well-known/openid-configuration").json()
        self.issuer = self.metadata["issuer"]
        self.jwk = registration["private_jwk"]
        self.auth = auth
        if auth == "private_key_jwt":
            self.oauth = OAuth2Client(self.client_id, client_secret=ECKey.import_key(self.jwk),
                                      token_endpoint_auth_method="private_key_jwt", verify=self.context, timeout=15)
            self.oauth.register_client_auth_method(
                PrivateKeyJWT(self.issuer, alg="ES256", headers={"kid": self.jwk["kid"]}))
        else:
            self.oauth = OAuth2Client(self.client_id, token_endpoint_auth_method=auth, verify=self.context, timeout=15)
            self.oauth.register_client_auth_method((auth, encode_none))

    def close(self) -> None:
        self.http.close()
        self.oauth.close()

    # Back channel
    def client_credentials(self, scope: str = "accounts") -> dict:
        return self.oauth.fetch_token(self.metadata["token_endpoint"], grant_type="client_credentials", scope=scope)

    def create_consent(self, permissions=None, token: dict | None = None, **data) -> dict:
        token = token or self.client_credentials()
        body = {"Data": {"Permissions": permissions or ["ReadAccountsBasic"], **data}, "Risk": {}}
        response = self.http.post(self.base + CONSENTS, json=body,
                                  headers={"Authorization": f"Bearer {token['access_token']}"})
        assert response.status_code == 201, response.text
        assert_conforms(response.json(), "OBReadConsentResponse1")
        return response.json()["Data"]

    def post_form(self, endpoint: str, data: dict):
        """A back-channel form POST authenticated the client's way (what Authlib does for token requests)."""
        return self.oauth.request("POST", self.metadata[endpoint], data=data, withhold_token=True,
                                  auth=self.oauth.client_auth(self.auth))

    def push(self, consent_id: str, scope: str = "openid accounts", **overrides) -> tuple[object, Pushed]:
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(16)
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": scope, "state": state, "nonce": secrets.token_urlsafe(16),
                  "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
                  "consent_id": consent_id}
        if self.auth == "tls_client_auth":
            del params["client_id"]  # the tls_client_auth encoding adds it (a parameter may appear only once)
        params.update(overrides)
        params = {k: v for k, v in params.items() if v is not None}
        response = self.post_form("pushed_authorization_request_endpoint", params)
        pushed = Pushed(response.json().get("request_uri", ""), state, verifier) if response.status_code == 201 \
            else Pushed("", state, verifier)
        return response, pushed

    def exchange(self, code: str, code_verifier: str | None, **extra) -> dict:
        kwargs = {"code": code, "redirect_uri": self.redirect_uri, **extra}
        if code_verifier is not None:
            kwargs["code_verifier"] = code_verifier
        return self.oauth.fetch_token(self.metadata["token_endpoint"], grant_type="authorization_code", **kwargs)

    def get(self, path: str, token: dict | str, unattended: bool = False, **kwargs) -> httpx.Response:
        """A resource call; by default with the customer present (FAPI x-fapi-customer-ip-address), so it does
        not count against the consent's unattended allowance."""
        access = token if isinstance(token, str) else token["access_token"]
        headers = {"Authorization": f"Bearer {access}", **({} if unattended else CUSTOMER_PRESENT),
                   **kwargs.pop("headers", {})}
        return self.http.get(self.base + path, headers=headers, **kwargs)

    # Payments (UK OB v3.1.4+: signed bodies, idempotency keys)
    def payment_consent(self, initiation: dict, key: str | bool | None = None, signed: bool = True) -> httpx.Response:
        """POST a domestic payment consent (client credentials); `key=False` sends no x-idempotency-key."""
        cc = self.client_credentials("payments")
        body = orjson.dumps({"Data": {"Initiation": initiation}, "Risk": {}})
        headers = {"Authorization": f"Bearer {cc['access_token']}", "content-type": "application/json"}
        if key is not False:
            headers["x-idempotency-key"] = key or secrets.token_hex(8)
        if signed:
            headers["x-jws-signature"] = sign_detached(body, self.jwk, self.client_id)
        return self.http.post(self.base + PAYMENT_CONSENTS, content=body, headers=headers)

    def authorise_payment(self, consent_id: str, customer: str = "alice", debtor: str | None = None,
                          inspect: Callable[[httpx.Response], None] | None = None) -> dict:
        """PAR, login, approve paying from `debtor` (default: the first account offered), code → token.
        `inspect` sees the consent page first (what the customer is shown)."""
        def choose(page: httpx.Response) -> dict:
            return {"account_ids": debtor or only_form(page.text).choices["account_ids"][0]}
        return self._authorise(consent_id, "payments", customer, choose, inspect)

    def _authorise(self, consent_id: str, scope: str, customer: str, choose: Callable[[httpx.Response], dict],
                   inspect: Callable[[httpx.Response], None] | None) -> dict:
        """PAR for `scope`, the customer logs in and approves with the fields `choose` picks, code → token."""
        response, pushed = self.push(consent_id, scope=f"openid {scope}")
        assert response.status_code == 201, response.text
        browser = Browser(self.base, self.pki)
        try:
            page = browser.login(browser.open(self.client_id, pushed.request_uri), customer)
            assert page.status_code == 200, page.text
            if inspect is not None:
                inspect(page)
            answer = browser.submit(page, {**choose(page), "decision": "approve"})
        finally:
            browser.close()
        assert answer.status_code in (302, 303), answer.text
        return self.exchange(redirect_params(answer)["code"], pushed.code_verifier)

    def pay(self, token: dict, consent_id: str, initiation: dict, key: str | None = None, signed: bool = True,
            http: httpx.Client | None = None, sign_body: bytes | None = None) -> httpx.Response:
        body = orjson.dumps({"Data": {"ConsentId": consent_id, "Initiation": initiation}, "Risk": {}})
        headers = {"Authorization": f"Bearer {token['access_token']}", "content-type": "application/json",
                   "x-idempotency-key": key or secrets.token_hex(8), **CUSTOMER_PRESENT}
        if signed:
            headers["x-jws-signature"] = sign_detached(sign_body or body, self.jwk, self.client_id)
        return (http or self.http).post(self.base + PAYMENTS, content=body, headers=headers)

    def read_payment(self, path: str, token: dict | str, schema: str, details_schema: str, api: str = "pisp") -> dict:
        """GET a payment at `path` and its payment-details, each 200 and of its schema; the payment's document."""
        got = self.get(path, token)
        assert got.status_code == 200, got.text
        assert_conforms(got.json(), schema, api)
        details = self.get(f"{path}/payment-details", token)
        assert details.status_code == 200, details.text
        assert_conforms(details.json(), details_schema, api)
        return got.json()

    # Confirmation of funds (CBPII)
    def funds_consent(self, debtor: dict, **data) -> dict:
        """POST a funds-confirmation consent naming `debtor` (SchemeName, Identification); its Data."""
        cc = self.client_credentials("fundsconfirmations")
        body = {"Data": {"DebtorAccount": {"SchemeName": debtor["SchemeName"],
                                           "Identification": debtor["Identification"]}, **data}}
        response = self.http.post(self.base + FUNDS_CONSENTS, json=body,
                                  headers={"Authorization": f"Bearer {cc['access_token']}"})
        assert response.status_code == 201, response.text
        assert_conforms(response.json(), "OBFundsConfirmationConsentResponse1", "cbpii")
        return response.json()["Data"]

    def authorise_funds(self, consent_id: str, customer: str = "alice",
                        inspect: Callable[[httpx.Response], None] | None = None) -> dict:
        """PAR, login, approve (nothing to choose: the consent names its account), code → token."""
        return self._authorise(consent_id, "fundsconfirmations", customer, lambda page: {}, inspect)

    # The whole flow
    def consent_token(self, permissions=None, customer: str = "alice", accounts: list[str] | None = None,
                      **data) -> dict:
        """The whole flow; `data` goes into the consent's Data (ExpirationDateTime, TransactionFromDateTime...)."""
        consent = self.create_consent(permissions, **data)
        redirect, pushed = self.approve(consent["ConsentId"], customer, accounts)
        assert redirect["state"] == pushed.state and redirect["iss"] == self.issuer, redirect
        token = self.exchange(redirect["code"], pushed.code_verifier)
        token["consent_id"] = consent["ConsentId"]
        return token

    def approve(self, consent_id: str, customer: str = "alice", accounts: list[str] | None = None,
                **push) -> tuple[dict[str, str], Pushed]:
        """PAR (with `push` over the usual parameters), then the customer logs in and approves: (the redirect's
        parameters, what was pushed)."""
        response, pushed = self.push(consent_id, **push)
        assert response.status_code == 201, response.text
        browser = Browser(self.base, self.pki)
        try:
            return browser.authorize(self.client_id, pushed.request_uri, customer, accounts=accounts), pushed
        finally:
            browser.close()


class Browser:
    """The customer's browser: no client certificate, cookies kept, redirects to the TPP not followed."""

    def __init__(self, base: str, pki: Path) -> None:
        self.base, self.pki = base, pki
        self.http = httpx.Client(verify=client_context(pki / "ca.pem"), timeout=15)

    def open(self, client_id: str, request_uri: str) -> httpx.Response:
        return self.http.get(self.base + "/oauth2/authorize",
                             params={"client_id": client_id, "request_uri": request_uri})

    def submit(self, page: httpx.Response, fields: dict) -> httpx.Response:
        form = only_form(page.text)
        return self.http.post(self.base + form.action, data={**form.hidden, **fields})

    def login(self, page: httpx.Response, customer: str, password: str | None = None) -> httpx.Response:
        """Both factors: the password, then (if it was right) the authenticator's code; the page that follows."""
        answer = self.password(page, customer, password)
        return self.code(answer, customer) if answer.status_code == 200 and _asks_for_code(answer) else answer

    def password(self, page: httpx.Response, customer: str, password: str | None = None) -> httpx.Response:
        """The first factor alone: the code page if the password is right."""
        return self.submit(page, {"username": customer, "password": password or f"{customer}-pass"})

    def code(self, page: httpx.Response, customer: str, otp: str | None = None) -> httpx.Response:
        """The second factor: `otp`, or a fresh code of the customer's authenticator (support.authenticator); if a
        bank that accepts only the codes next to now refuses it, one of those."""
        if otp is not None:
            return self.submit(page, {"otp": otp})
        answer = self.submit(page, {"otp": one_time_code(self.pki, customer, self.base)})
        if answer.status_code == 401:
            answer = self.submit(answer, {"otp": next_to_now(self.pki, customer, self.base)})
        assert answer.status_code != 401, f"the bank refused {customer}'s fresh one-time codes"
        return answer

    def authorize(self, client_id: str, request_uri: str, customer: str = "alice", decision: str = "approve",
                  accounts: list[str] | None = None) -> dict:
        """Log in (password and code), choose accounts (default: all offered), decide; returns the redirect's query
        parameters."""
        login = self.open(client_id, request_uri)
        assert login.status_code == 200, login.text
        consent_page = self.login(login, customer)
        assert consent_page.status_code == 200, consent_page.text
        offered = only_form(consent_page.text).choices["account_ids"]
        answer = self.submit(consent_page, {"account_ids": accounts or offered, "decision": decision})
        assert answer.status_code in (302, 303), answer.text
        return redirect_params(answer)

    def close(self) -> None:
        self.http.close()


def _asks_for_code(page: httpx.Response) -> bool:
    return any("otp" in form.inputs for form in forms(page.text))


def redirect_params(response: httpx.Response) -> dict[str, str]:
    query = urlsplit(response.headers["location"]).query
    return {k: v[0] for k, v in parse_qs(query).items()}


def access_token_for(gateway, pki: Path, name: str = "tpp-demo", permissions=None) -> str:
    """Register the demo TPPs and run the whole flow once: a consent-bound access token for `name`."""
    gateway.register_tpps(pki)
    tpp = Tpp(gateway.base, pki, name)
    try:
        return tpp.consent_token(permissions)["access_token"]
    finally:
        tpp.close()
