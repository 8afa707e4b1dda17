"""The customer's consent dashboard (CONTRACT §6): log in through the bank, see every consent given, withdraw one.

    GET  /login, POST /login           the bank checks the password; a fresh session id after login (no fixation)
    GET  /consents                     each consent: the TPP, what it may see, accounts, dates, status, accesses
                                       (in words, beside the path called), and its withdrawal: a disclosure that
                                       states the consequence around the revoke form, with a way to keep it
    POST /consents/{ConsentId}/revoke  withdraws it (CSRF token), effective on the next call of any of its tokens
    POST /logout

A customer sees and withdraws only consents they authorised themselves (the customer index, never an id guessed).
A session exists only once the customer has logged in: the login form is guarded by a signed double-submit cookie
(web.forms), so showing it, or refusing its post, writes nothing to Redis.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from gateway.bank import Bank, BankUnavailable
from gateway.call import SCOPE_KEY, Call
from gateway.client_address import source_of
from gateway.consents.control_parameters import current_periods, parse_control_parameters
from gateway.consents.lifecycle import ConsentConflict, revoke
from gateway.consents.model import Consent, from_record
from gateway.errors import PAGE_REASONS
from gateway.web import language, locales
from gateway.web.brand import DEFAULT_BRAND, Brand
from gateway.web.catalogue import text
from gateway.web.forms import SignedDoubleSubmit, csrf_matches, one, read_form
from gateway.web.login import PasswordCheck, TooManyAttempts
from gateway.web.pages import (
    BANK_UNREACHABLE,
    DASHBOARD_COOKIE,
    clear_session,
    error_page,
    in_language,
    locale,
    page,
    redirect,
    refuse,
    say,
    set_session,
)

SESSION = "dashboard"
# What withdrawing a consent ends, by its scope (what the confirmation says before the customer confirms).
_CONSEQUENCE = {"accounts": "dash.consequence_ais", "fundsconfirmations": "dash.consequence_funds"}
SESSION_SECONDS = 900
LOG_IN_AGAIN = "error.log_in_again"  # a form without its session or CSRF token (403)


class _Page:
    """One dashboard route as a raw ASGI app; `handlers` maps the method to the handler. Its pages speak the
    customer's language (web.locales) under the bank's brand; a GET page's language links point at it again."""

    def __init__(self, template: str, handlers: dict, brand: Brand) -> None:
        self.template, self.handlers, self.brand = template, handlers, brand

    async def __call__(self, scope, receive, send) -> None:
        call: Call = scope[SCOPE_KEY]
        call.route_template = self.template
        request = Request(scope, receive)
        handler = self.handlers.get(request.method)

        async def answer() -> Response:
            if handler is None:
                return error_page(call, "route.method_not_allowed", "error.not_here", 405)
            return await handler(request, call)
        here = self.template if "GET" in self.handlers else None
        response = await in_language(request, self.brand, here, answer)
        await response(scope, receive, send)


class Dashboard:
    def __init__(self, sessions, consents, clients, bank: Bank, passwords: PasswordCheck, csrf: SignedDoubleSubmit,
                 accesses, notify, vrp_usage, brand: Brand = DEFAULT_BRAND) -> None:
        """`accesses(consent_id)` lists recent accesses; `notify(consent)` tells the TPP of a revocation;
        `vrp_usage(consent_id)` what a VRP consent's payments have used, per period; `brand` the bank's name and
        logo on every page."""
        self.sessions, self.consents, self.clients, self.bank = sessions, consents, clients, bank
        self.brand = brand
        self.passwords, self.csrf = passwords, csrf
        self.accesses, self.notify, self.vrp_usage = accesses, notify, vrp_usage

    def endpoints(self) -> list[tuple[str, _Page]]:
        return [(path, _Page(path, handlers, self.brand)) for path, handlers in (
            ("/login", {"GET": self._login_form, "POST": self._login}), ("/consents", {"GET": self._list}),
            ("/consents/{ConsentId}/revoke", {"POST": self._revoke}), ("/logout", {"POST": self._logout}))]

    # Sessions
    async def _new_session(self, state: dict) -> str:
        session_id = secrets.token_urlsafe(32)
        await run_in_threadpool(self.sessions.save_session, SESSION, session_id, state, SESSION_SECONDS)
        return session_id

    async def _state(self, request: Request) -> tuple[str | None, dict | None]:
        session_id = request.cookies.get(DASHBOARD_COOKIE)
        state = await run_in_threadpool(self.sessions.session, SESSION, session_id) if session_id else None
        return session_id, state

    async def _posted(self, request: Request, call: Call):
        """(session id, state, form) for a POST carrying its session's CSRF token, else the refusal page."""
        session_id, state = await self._state(request)
        form = await read_form(request)
        if state is None or form is None or not csrf_matches(form, state["csrf"]):
            return error_page(call, "web.csrf_invalid" if state else "web.session_missing", LOG_IN_AGAIN, 403)
        return session_id, state, form

    # GET /login, POST /login
    async def _login_form(self, request: Request, call: Call, error: str | None = None, status: int = 200,
                          retry_after: int | None = None):
        value = self.csrf.value(request.cookies.get(SignedDoubleSubmit.COOKIE))
        response = page("dashboard_login.html", status=status, csrf_token=self.csrf.token(value), error=error)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return set_session(response, value, SESSION_SECONDS, SignedDoubleSubmit.COOKIE)

    async def _login(self, request: Request, call: Call):
        form = await read_form(request)
        if form is None or not self.csrf.matches(form, request.cookies.get(SignedDoubleSubmit.COOKIE)):
            return error_page(call, "web.csrf_invalid", LOG_IN_AGAIN, 403)
        try:
            customer = await self.passwords(one(form, "username"), one(form, "password"), source_of(request.scope))
        except TooManyAttempts as refused:
            refuse(call, refused.reason)
            return await self._login_form(request, call, say(f"reason.{refused.reason}"),
                                          PAGE_REASONS[refused.reason].status, refused.retry_after)
        except BankUnavailable:
            return error_page(call, "backend.unavailable", BANK_UNREACHABLE, 502)
        if customer is None:
            refuse(call, "web.login_failed")
            return await self._login_form(request, call, say("reason.web.login_failed"),
                                          PAGE_REASONS["web.login_failed"].status)
        # A new session id at every login (no fixation); one the browser brought is ended.
        brought = request.cookies.get(DASHBOARD_COOKIE)
        if brought:
            await run_in_threadpool(self.sessions.end_session, SESSION, brought)
        state = {"csrf": secrets.token_urlsafe(32),
                 "customer": {"id": customer.customer_id, "name": customer.display_name}}
        call.customer_id = customer.customer_id  # audited as the customer's pseudonym
        response = set_session(redirect("/consents", 303), await self._new_session(state), SESSION_SECONDS,
                               DASHBOARD_COOKIE)
        return clear_session(response, SignedDoubleSubmit.COOKIE)

    # GET /consents
    async def _list(self, request: Request, call: Call):
        _, state = await self._state(request)
        if state is None or state["customer"] is None:
            return redirect("/login", 303)
        customer = state["customer"]
        call.customer_id = customer["id"]
        try:
            labels = {a.account_id: a.label for a in await self.bank.accounts(customer["id"])}
        except BankUnavailable:
            labels = {}
        consents = await run_in_threadpool(self._describe_all, customer["id"], labels, locale())
        notice = say("dash.withdrawn") if request.query_params.get("revoked") else None
        return page("consents.html", customer_name=customer["name"], consents=consents, csrf_token=state["csrf"],
                    notice=notice)

    def _describe_all(self, customer_id: str, labels: dict[str, str], here: str) -> list[dict]:
        described, now = [], datetime.now(timezone.utc)
        for record in self.consents.of_customer(customer_id):
            consent = from_record(record)
            client = self.clients.get(consent.client_id) or {}
            tpp_name = client.get("client_name", consent.client_id)
            described.append({
                "consent_id": consent.consent_id, "tpp_name": tpp_name,
                "status": text(here, f"status.{consent.shown_status}"),
                "granted": locales.day(here, consent.authorised_at), "expires": locales.day(here, consent.expires),
                "will_see": language.will_see(here, consent.permissions, consent.kind),
                "payment": self._payment(here, consent) if consent.kind.is_payment else None,
                "accounts": [labels.get(a, a) for a in consent.accounts],
                "accesses": [{**access, "words": language.access_in_words(here, access, now)}
                             for access in self.accesses(consent.consent_id)],
                "revocable": consent.revocable, "consequence": text(here, _CONSEQUENCE.get(
                    consent.kind.scope, "dash.consequence_pay"), tpp=tpp_name),
            })
        return described

    def _payment(self, here: str, consent) -> list[str]:
        """What a payment consent allows, and for a live VRP consent what its payments have used of each limit."""
        lines = language.what_the_payment_does(here, consent.kind, consent.terms or {})
        control = (consent.terms or {}).get("ControlParameters")
        if control and consent.revocable:
            params = parse_control_parameters(control, consent.created)
            used = self.vrp_usage(consent.consent_id)
            lines += [language.period_used(here, p.limit.period_type, p.start, p.end, used.get(p.period_id, 0),
                                           p.limit_minor, params.currency)
                      for p in current_periods(params, datetime.now(timezone.utc))]
        return lines

    # POST /consents/{ConsentId}/revoke
    async def _revoke(self, request: Request, call: Call):
        found = await self._posted(request, call)
        if not isinstance(found, tuple):
            return found
        _, state, _ = found
        if state["customer"] is None:
            return redirect("/login", 303)
        call.customer_id = state["customer"]["id"]
        consent = await run_in_threadpool(self._own_consent, state["customer"]["id"],
                                          request.path_params["ConsentId"])
        if consent is None:
            return error_page(call, "consent.unknown", "error.no_such_consent", 404)
        call.client_id, call.consent_id = consent.client_id, consent.consent_id
        try:
            await run_in_threadpool(revoke, self.consents, consent, self.notify)
        except ConsentConflict:
            refuse(call, "consent.conflict")
        return redirect("/consents?revoked=1", 303)

    def _own_consent(self, customer_id: str, consent_id: str) -> Consent | None:
        for record in self.consents.of_customer(customer_id):
            if record["consent_id"] == consent_id:
                return from_record(record)
        return None

    # POST /logout
    async def _logout(self, request: Request, call: Call):
        found = await self._posted(request, call)
        if not isinstance(found, tuple):
            return found
        await run_in_threadpool(self.sessions.end_session, SESSION, found[0])
        return clear_session(redirect("/login", 303), DASHBOARD_COOKIE)
