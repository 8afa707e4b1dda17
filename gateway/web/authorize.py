"""The authorization endpoint's customer steps (RFC 6749 §4.1.1, RFC 9126 §4): pushed request → login → one-time
code → consent.

    GET  /oauth2/authorize?client_id&request_uri   takes the pushed request (single use), opens a login session
    POST /oauth2/authorize/login                    the bank checks the password; a new session id (no fixation)
    POST /oauth2/authorize/otp                      the bank checks the authenticator's code; a new session id again
    POST /oauth2/authorize/decision                 approve → consent Authorised + code; deny → Rejected + error
    GET  /oauth2/authorize/step?lang=               the session's current step again (the pages' language links)

Strong customer authentication (PSD2 RTS Art. 4): the consent page, and the decision, need both factors passed in
this session; the session records which (RFC 8176 names, oauth.grants), and the id_token's `acr` is read from them.
Dynamic linking (Art. 5): the code page shows a payment's amount and payee, and the code confirms exactly what was
shown (`linked_terms`, this consent's terms as the page read them); if the consent is not that at the code or at
the decision, the customer must authenticate again, seeing it as it is now. A customer who has given only their
password learns nothing of the consent or their accounts.

State lives server-side in Redis under the session cookie; each form carries the session's CSRF token. Errors
before the client's redirect URI is known are shown as a page (§4.1.2.1 forbids redirecting then); after, they are
redirects with `error`, `state` and `iss` (RFC 9207).
"""
from __future__ import annotations

import functools
import hashlib
import secrets
import time
from urllib.parse import parse_qsl

import orjson
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import LoginRequiredError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gateway.bank import Bank, BankUnavailable
from gateway.call import SCOPE_KEY, Call
from gateway.client_address import source_of
from gateway.consents.lifecycle import ConsentConflict, move, now_iso
from gateway.consents.model import Consent, Kind, Status, from_record
from gateway.errors import PAGE_REASONS, oauth_reason
from gateway.oauth import jarm
from gateway.oauth.grants import ONE_TIME_CODE, PASSWORD, STRONG_FACTORS, new_grantee
from gateway.oauth.requests import query_request, single_values
from gateway.oauth.signing_keys import signer
from gateway.web import language, locales
from gateway.web.brand import DEFAULT_BRAND, Brand
from gateway.web.forms import csrf_matches, one, read_form
from gateway.web.login import CodeCheck, PasswordCheck, TooManyAttempts
from gateway.web.pages import (
    BANK_UNREACHABLE,
    SESSION_COOKIE,
    clear_session,
    error_page,
    in_language,
    locale,
    origin,
    page,
    prefer,
    redirect,
    refuse,
    say,
    set_session,
)

AUTHORIZE_PATH = "/oauth2/authorize"
LOGIN_PATH = "/oauth2/authorize/login"
OTP_PATH = "/oauth2/authorize/otp"
DECISION_PATH = "/oauth2/authorize/decision"
STEP_PATH = "/oauth2/authorize/step"
MAX_LOGIN_ATTEMPTS = 5  # wrong passwords and codes together, in one session
SESSION = "authorize"


class _Step:
    """One step as a raw ASGI app: names the audited route, then answers with what the handler returns, its pages
    in the customer's language (web.locales) under the bank's brand."""

    def __init__(self, template: str, handler, brand: Brand) -> None:
        self.template, self.handler, self.brand = template, handler, brand

    async def __call__(self, scope, receive, send) -> None:
        call: Call = scope[SCOPE_KEY]
        call.route_template = self.template
        request = Request(scope, receive)
        response = await in_language(request, self.brand, STEP_PATH, lambda: self.handler(request, call))
        await response(scope, receive, send)


def linked_terms(consent: Consent) -> str:
    """What a customer's code confirms (dynamic linking, PSD2 RTS Art. 5(1)): this consent and every term its pages
    show — a payment's amount, payee and the rest of its Data as asked (Initiation, ControlParameters...), the
    account it names, the permissions and their window — as the SHA-256 of their canonical JSON."""
    shown = {"consent_id": consent.consent_id, "kind": str(consent.kind),
             "terms": consent.terms or {"Initiation": consent.initiation}, "debtor_account": consent.debtor_account,
             "permissions": list(consent.permissions), "expires": consent.expires,
             "window": [consent.transaction_from, consent.transaction_to]}
    return hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)).hexdigest()


class CustomerAuthorization:
    """The customer steps, and the current one shown again, as ASGI endpoints (see the module docstring)."""

    def __init__(self, server, bank: Bank, passwords: PasswordCheck, login_seconds: int,
                 brand: Brand = DEFAULT_BRAND) -> None:
        self.server = server
        self.brand = brand
        self.bank = bank
        self.passwords = passwords
        self.codes: CodeCheck = passwords.second_factor()
        self.login_seconds = login_seconds
        self._sign_response = signer(server.keys.ring, jarm.TYP)  # JARM: a response JWT, with the token key

    def endpoints(self) -> list[tuple[str, object]]:
        """(path, ASGI app) of each step, for the router."""
        return [(path, _Step(path, handler, self.brand)) for path, handler in (
            (AUTHORIZE_PATH, self._start), (LOGIN_PATH, self._login), (OTP_PATH, self._second_factor),
            (DECISION_PATH, self._decide), (STEP_PATH, self._again))]

    # GET /oauth2/authorize
    async def _start(self, request: Request, call: Call):
        # OIDC Core §3.1.2.1: GET, or POST with the parameters as a form.
        if request.method not in ("GET", "POST"):
            return error_page(call, "oauth.invalid_request", "error.use_get_or_post", 405)
        form = await read_form(request) if request.method == "POST" else None  # bounded, as every page's form
        if request.method == "POST" and form is None:
            return error_page(call, "oauth.invalid_request", "error.form_unreadable")
        try:
            pairs = parse_qsl(request.url.query, keep_blank_values=True) if form is None else [
                (name, value) for name, values in form.items() for value in values]
            params = single_values(pairs)
        except OAuth2Error:
            return error_page(call, "oauth.invalid_request", "error.repeated_parameter")
        # RFC 9126 §4: with require_pushed_authorization_requests the only parameters are client_id + request_uri
        # (and CONTRACT §4's `lang`, for display only: in_language has read it).
        if set(params) - {"lang"} != {"client_id", "request_uri"}:
            return error_page(call, "oauth.invalid_request", "error.not_pushed")
        pushed = await run_in_threadpool(self.server.store.take_request, params["request_uri"], params["client_id"])
        if pushed is None:
            return error_page(call, "oauth.invalid_request_uri", "error.link_expired")
        call.client_id = pushed["client_id"]
        prefer(locales.from_ui_locales(pushed.get("ui_locales")))  # OIDC Core §3.1.2.1, unless the customer chose
        oauth_request = self._oauth_request(request, pushed)
        try:
            grant = await run_in_threadpool(self.server.get_consent_grant, oauth_request)
        except OAuth2Error as error:
            return self._error_response(call, oauth_request, error)
        consent = oauth_request.consent
        call.consent_id = consent.consent_id
        if "none" in pushed.get("prompt", "").split():  # OIDC: no page may be shown, and a customer must log in
            return self._error_response(call, oauth_request, LoginRequiredError(
                redirect_uri=pushed["redirect_uri"], state=pushed.get("state")))
        session_id = secrets.token_urlsafe(32)
        state = {"params": pushed, "csrf": secrets.token_urlsafe(32), "stage": "login", "attempts": 0, "factors": []}
        await run_in_threadpool(self.server.store.save_session, SESSION, session_id, state, self.login_seconds)
        return set_session(self._login_page(grant.client, state), session_id, self.login_seconds)

    # POST /oauth2/authorize/login
    async def _login(self, request: Request, call: Call):
        found = await self._session(request, call, "login")
        if not isinstance(found, tuple):
            return found
        session_id, state, form = found
        client = self.server.query_client(state["params"]["client_id"])
        try:
            customer = await self.passwords(one(form, "username"), one(form, "password"), source_of(request.scope))
        except TooManyAttempts as refused:
            return self._too_many(call, refused, functools.partial(self._login_page, client, state))
        except BankUnavailable:
            return error_page(call, "backend.unavailable", BANK_UNREACHABLE, 502)
        if customer is None:
            return await self._failed(call, session_id, state, "web.login_failed",
                                      functools.partial(self._login_page, client, state))
        # The code page shows a payment as it is now: that is what the code will confirm (`shown`). A new session id
        # and CSRF token once the customer is known: a session fixed before login is worthless.
        consent = await run_in_threadpool(self._consent, state)
        state |= {"stage": "otp", "factors": [PASSWORD], "shown": linked_terms(consent),
                  "customer": {"id": customer.customer_id, "name": customer.display_name}}
        session_id = await self._renew(session_id, state)
        call.consent_id, call.customer_id = consent.consent_id, customer.customer_id
        return set_session(self._code_page(client, consent, state), session_id, self.login_seconds)

    # POST /oauth2/authorize/otp
    async def _second_factor(self, request: Request, call: Call):
        found = await self._session(request, call, "otp")
        if not isinstance(found, tuple):
            return found
        session_id, state, form = found
        client = self.server.query_client(state["params"]["client_id"])
        consent = await run_in_threadpool(self._consent, state)
        call.consent_id = consent.consent_id
        if one(form, "decision") == "deny":
            # "Cancel": the customer leaves before agreeing or refusing anything; the consent still awaits them.
            await run_in_threadpool(self.server.store.end_session, SESSION, session_id)
            return clear_session(await self._deny_redirect(state, call, "The customer cancelled the log-in."))
        if linked_terms(consent) != state["shown"]:
            # The code would confirm what the page showed, which the consent no longer is: show it as it is now.
            state["shown"] = linked_terms(consent)
            await run_in_threadpool(self.server.store.save_session, SESSION, session_id, state, self.login_seconds)
            refuse(call, "web.sca_relink")
            shown = PAGE_REASONS["web.sca_relink"]
            return self._code_page(client, consent, state, error=say("reason.web.sca_relink"), status=shown.status)
        customer_id = state["customer"]["id"]
        try:
            passed = await self.codes(customer_id, one(form, "otp"), source_of(request.scope))
        except TooManyAttempts as refused:
            return self._too_many(call, refused, functools.partial(self._code_page, client, consent, state))
        except BankUnavailable:
            return error_page(call, "backend.unavailable", BANK_UNREACHABLE, 502)
        if not passed:
            return await self._failed(call, session_id, state, "web.otp_failed",
                                      functools.partial(self._code_page, client, consent, state))
        try:
            choices = await self.bank.accounts(customer_id)
        except BankUnavailable:
            return error_page(call, "backend.unavailable", BANK_UNREACHABLE, 502)
        debtor = (consent.initiation or {}).get("DebtorAccount") or consent.debtor_account
        if debtor is not None:
            # The consent names the account (a payment's to pay from, a funds check's): only that one, if it is this
            # customer's, may be chosen.
            choices = [c for c in choices if c.is_identified_by(debtor)]
            if not choices:
                await run_in_threadpool(self.server.store.end_session, SESSION, session_id)
                return clear_session(await self._deny_redirect(state, call, "The consent's debtor account is not "
                                                               "one of this customer's."))
        # Strong customer authentication, linked to what the code page showed; a new session id for the new privilege.
        state |= {"stage": "consent", "factors": [*state["factors"], ONE_TIME_CODE],
                  "authenticated": {"at": int(time.time()), "terms": state["shown"]},
                  "accounts": [[c.account_id, c.label] for c in choices]}
        session_id = await self._renew(session_id, state)
        return set_session(self._consent_page(client, consent, state), session_id, self.login_seconds)

    # POST /oauth2/authorize/decision
    async def _decide(self, request: Request, call: Call):
        found = await self._session(request, call, "consent")
        if not isinstance(found, tuple):
            return found
        session_id, state, form = found
        decision = form.get("decision", [""])
        if len(decision) != 1 or decision[0] not in ("approve", "deny"):
            refuse(call, "oauth.invalid_request")
            return self._consent_page(self.server.query_client(call.client_id), await run_in_threadpool(
                self._consent, state), state, error=say("consent.choose_decision"), status=400)
        consent = await run_in_threadpool(self._consent, state)
        call.consent_id = consent.consent_id
        authenticated = state.get("authenticated")
        if not STRONG_FACTORS <= set(state.get("factors", ())) or not authenticated:
            # Unreachable through the steps (the stage is "consent" only after both): never decide without them.
            return error_page(call, "web.session_missing", "error.out_of_order")
        if authenticated["terms"] != linked_terms(consent):
            return await self._relink(session_id, state, call)
        if decision[0] == "deny":
            await run_in_threadpool(self.server.store.end_session, SESSION, session_id)
            response = await self._deny_redirect(state, call, "The customer did not agree.")
            await run_in_threadpool(self._reject, consent)
            return clear_session(response)
        chosen = form.get("account_ids", [])
        offered = {account_id for account_id, _ in state["accounts"]}
        if not chosen and consent.kind.names_its_account:
            chosen = sorted(offered)  # the consent names its one account: there is nothing to choose
        single = consent.kind is not Kind.ACCOUNT_ACCESS
        if not chosen or not set(chosen) <= offered or len(set(chosen)) != len(chosen) or (single and len(chosen) != 1):
            refuse(call, "oauth.invalid_request")
            message = say("consent.choose_debtor" if single else "consent.choose_accounts")
            return self._consent_page(self.server.query_client(call.client_id), consent, state, error=message,
                                      status=400)
        await run_in_threadpool(self.server.store.end_session, SESSION, session_id)
        response = await run_in_threadpool(self._approve, state, consent, chosen, call)
        return clear_session(response)

    # GET /oauth2/authorize/step
    async def _again(self, request: Request, call: Call):
        """The session's current step shown again (in the language `lang` asks for): a GET, so it changes nothing;
        the page carries the same CSRF token as before."""
        if request.method != "GET":
            return error_page(call, "oauth.invalid_request", "error.use_form", 405)
        session_id = request.cookies.get(SESSION_COOKIE)
        state = await run_in_threadpool(self.server.store.session, SESSION, session_id) if session_id else None
        if state is None:
            return error_page(call, "web.session_missing")
        call.client_id = state["params"]["client_id"]
        client = self.server.query_client(call.client_id)
        if state["stage"] == "login":
            return self._login_page(client, state)
        call.customer_id = state["customer"]["id"]
        consent = await run_in_threadpool(self._consent, state)
        call.consent_id = consent.consent_id
        if state["stage"] == "otp":
            return self._code_page(client, consent, state)
        return self._consent_page(client, consent, state)

    # The steps' shared parts
    async def _renew(self, session_id: str, state: dict) -> str:
        """The session under a new id and CSRF token (a step up in privilege): the old id is worth nothing after."""
        await run_in_threadpool(self.server.store.end_session, SESSION, session_id)
        session_id = secrets.token_urlsafe(32)
        state["csrf"] = secrets.token_urlsafe(32)
        await run_in_threadpool(self.server.store.save_session, SESSION, session_id, state, self.login_seconds)
        return session_id

    async def _failed(self, call: Call, session_id: str, state: dict, reason: str, again):
        """A wrong password or code: the step's page `again(error=, status=)` under `reason`, or after too many in
        this session the end of the session (access_denied to the client)."""
        state["attempts"] += 1
        refuse(call, reason)
        if state["attempts"] >= MAX_LOGIN_ATTEMPTS:
            await run_in_threadpool(self.server.store.end_session, SESSION, session_id)
            return clear_session(await self._deny_redirect(state, call, "Too many failed log-in attempts."))
        await run_in_threadpool(self.server.store.save_session, SESSION, session_id, state, self.login_seconds)
        return again(error=say(f"reason.{reason}"), status=PAGE_REASONS[reason].status)

    async def _relink(self, session_id: str, state: dict, call: Call):
        """Dynamic linking refused the decision: the consent is not what the customer authenticated. Back to the
        login, under a new session for the same pushed request, to authenticate it as it is now."""
        refuse(call, "web.sca_relink")
        state = {"params": state["params"], "csrf": "", "stage": "login", "attempts": state["attempts"],
                 "factors": []}
        session_id = await self._renew(session_id, state)
        client = self.server.query_client(state["params"]["client_id"])
        return set_session(self._login_page(client, state, error=say("reason.web.sca_relink"),
                                            status=PAGE_REASONS["web.sca_relink"].status), session_id,
                           self.login_seconds)

    @staticmethod
    def _too_many(call: Call, refused: TooManyAttempts, again):
        """Refused before the bank: the step's page `again(error=, status=)`, saying when to try again."""
        refuse(call, refused.reason)
        response = again(error=say(f"reason.{refused.reason}"), status=PAGE_REASONS[refused.reason].status)
        response.headers["Retry-After"] = str(refused.retry_after)
        return response

    async def _session(self, request: Request, call: Call, stage: str):
        """(session id, state, form) of a live session at `stage` with a valid CSRF token, else the error page."""
        if request.method != "POST":
            return error_page(call, "oauth.invalid_request", "error.use_form", 405)
        form = await read_form(request)
        if form is None:
            return error_page(call, "oauth.invalid_request", "error.form_unreadable")
        session_id = request.cookies.get(SESSION_COOKIE)
        state = await run_in_threadpool(self.server.store.session, SESSION, session_id) if session_id else None
        if state is None:
            return error_page(call, "web.session_missing")
        call.client_id = state["params"]["client_id"]
        call.customer_id = (state.get("customer") or {}).get("id")  # audited as the customer's pseudonym
        # RFC 6749 §10.12: the form must carry this session's CSRF token.
        if not csrf_matches(form, state["csrf"]):
            return error_page(call, "web.csrf_invalid")
        if state["stage"] != stage:
            return error_page(call, "web.session_missing", "error.out_of_order")
        return session_id, state, form

    def _oauth_request(self, request: Request, params: dict):
        oauth_request = query_request(self.server.issuer, AUTHORIZE_PATH, params,
                                      {k.lower(): v for k, v in request.headers.items()})
        oauth_request.pushed = True  # built from a pushed request only (RFC 9126)
        return oauth_request

    def _consent(self, state: dict):
        params = state["params"]
        return from_record(self.server.consents.get(params["client_id"], params["consent_id"]))

    def _reject(self, consent) -> None:
        try:
            move(self.server.consents, consent, Status.REJECTED)
        except ConsentConflict:
            pass  # already decided elsewhere (revoked, expired): a refusal changes nothing more

    def _approve(self, state: dict, consent, chosen: list[str], call: Call):
        """Code first (Authlib re-validates the pushed request), then bind the consent to that one authorisation."""
        request = query_request(self.server.issuer, AUTHORIZE_PATH, state["params"], {})
        request.pushed = True
        customer_id = state["customer"]["id"]
        grantee = new_grantee(self.server.pseudonym(customer_id), consent.consent_id, state["params"].get("nonce"),
                              factors=state["factors"], authenticated_at=state["authenticated"]["at"])
        try:
            grant = self.server.get_consent_grant(request)
        except OAuth2Error as error:
            return self._error_response(call, request, error)
        response = self.server.create_authorization_response(request, grantee, grant)
        if response.status >= 400 or "code=" not in (response.location or ""):
            return self._from_oauth(call, response, request)
        # Indexed first: should the process die between the two writes, the customer still sees (and can withdraw)
        # an authorised consent on the dashboard; an index entry for a consent that lost the race shows its status.
        self.server.consents.index_for_customer(customer_id, consent.client_id, consent.consent_id)
        try:
            move(self.server.consents, consent, Status.AUTHORISED, customer_id=customer_id,
                 accounts=tuple(chosen), grant_id=grantee.grant_id, authorised_at=now_iso())
        except ConsentConflict as conflict:
            params = state["params"]
            late = InvalidRequestError(f"The consent is {conflict.found}.", redirect_uri=params["redirect_uri"],
                                       state=params.get("state"))
            return self._error_response(call, request, late)
        return self._from_oauth(call, response, request)

    async def _deny_redirect(self, state: dict, call: Call, why: str):
        params = state["params"]
        request = query_request(self.server.issuer, AUTHORIZE_PATH, params, {})
        request.pushed = True
        error = AccessDeniedError(description=why, redirect_uri=params["redirect_uri"], state=params.get("state"))
        return self._error_response(call, request, error)

    def _error_response(self, call: Call, request, error: OAuth2Error):
        """An error after the redirect URI is validated is a redirect with error, state and iss; before, a page."""
        if not error.redirect_uri:
            return error_page(call, oauth_reason(error.error),
                              say("error.app_request", detail=error.get_error_description() or error.error))
        return self._from_oauth(call, self.server.handle_error_response(request, error), request)

    def _from_oauth(self, call: Call, response, request):
        """The authorization response for the pushed `request`: its parameters in the redirect's query, with `iss`,
        or - with response_mode jwt (JARM) - in one response JWT the gateway signs."""
        location = response.location
        if "error=" in location and "code=" not in location:
            query = dict(parse_qsl(location.split("?", 1)[1]))
            refuse(call, oauth_reason(query.get("error", "invalid_request")))
        if "iss=" not in location:  # RFC 9207 §2: every authorization response, error responses included
            location = add_params_to_uri(location, {"iss": self.server.issuer})
        params = request.payload.data
        if jarm.wants_jwt(params):
            location = jarm.jwt_location(location, params["client_id"], self.server.issuer, self._sign_response)
        return redirect(location, response.status)

    @staticmethod
    def _name(client) -> str:
        return client.client_name if client else say("page.an_app")

    def _login_page(self, client, state: dict, error: str | None = None, status: int = 200):
        return page("login.html", status=status, tpp_name=self._name(client), csrf_token=state["csrf"],
                    action=LOGIN_PATH, error=error)

    def _code_page(self, client, consent, state: dict, error: str | None = None, status: int = 200):
        """The second factor's form; for a payment, it shows what the code will confirm (RTS Art. 5(1)(a))."""
        return page("otp.html", status=status, tpp_name=self._name(client), customer_name=state["customer"]["name"],
                    csrf_token=state["csrf"], action=OTP_PATH, payment=self._payment(consent), error=error)

    def _consent_page(self, client, consent, state: dict, error: str | None = None, status: int = 200):
        accounts = [{"account_id": a, "label": label} for a, label in state["accounts"]]
        payment, here = self._payment(consent), locale()
        window = None
        if consent.transaction_from or consent.transaction_to:
            window = say("consent.window", start=locales.day(here, consent.transaction_from) or say(
                "consent.window_start"), end=locales.day(here, consent.transaction_to) or say("consent.window_now"))
        recurring = consent.kind in (Kind.DOMESTIC_VRP, Kind.DOMESTIC_STANDING_ORDER, Kind.INTERNATIONAL_STANDING_ORDER)
        if payment and not recurring:
            how_long = say("consent.payment_once")
        elif consent.expires:
            how_long = say("consent.until", date=locales.day(here, consent.expires))
        else:
            how_long = say("consent.until_withdrawn")
        return page("consent.html", status=status, form_targets=(origin(state["params"]["redirect_uri"]),),
                    tpp_name=self._name(client), customer_name=state["customer"]["name"],
                    csrf_token=state["csrf"], action=DECISION_PATH, accounts=accounts, payment=payment,
                    funds_check=consent.kind is Kind.FUNDS_CONFIRMATION, single=consent.kind is not Kind.ACCOUNT_ACCESS,
                    several=recurring or consent.kind is Kind.FILE_PAYMENT,
                    will_see=language.will_see(here, consent.permissions, consent.kind),
                    will_not_see=language.will_not_see(here, consent.permissions), window=window,
                    how_long=how_long, error=error)

    @staticmethod
    def _payment(consent) -> list[str] | None:
        if not consent.kind.is_payment:
            return None
        return language.what_the_payment_does(locale(), consent.kind,
                                              consent.terms or {"Initiation": consent.initiation})
