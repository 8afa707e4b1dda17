"""Rendering customer pages with the headers every one of them carries, the session cookie, and the error page of a
refused step (audited under a catalogued reason: `errors.PAGE_REASONS`, or any other `errors.REFUSAL_REASONS` id).

Every page speaks the language `in_language` chose for its request (web.locales) and shows the bank's brand: the
route's wrapper sets them for the handler's run (a context variable, so the steps need not pass them along), and
templates take every word from the catalogue through `t(key, ...)`.

- `Cache-Control: no-store` (a shared computer never shows a consent page from its cache);
- anti-framing twice over: `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'` (clickjacking);
- a CSP that allows no script at all, styles only by a per-page nonce (the one stylesheet, static/obgw.css, is
  inlined), images only as `data:` (the bank's logo), and forms only to this origin and, on the consent page, to the
  TPP's redirect origin (browsers apply `form-action` to the redirect that follows a POST);
- `Strict-Transport-Security: max-age=31536000` (RFC 6797): a browser that has seen one page goes to this host only
  over HTTPS for a year, so an attacker on the path cannot strip TLS from a later visit. Browsers ignore it for an
  IP-address host (§8.1.1) and honour it once the gateway is reached by name; no `includeSubDomains`, since the
  gateway speaks for no other host;
- the session, CSRF and language cookies are `__Host-` prefixed, `Secure`, `HttpOnly` and `SameSite=Lax`.
"""
from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.errors import PAGE_REASONS, catalogued
from gateway.web import locales
from gateway.web.brand import DEFAULT_BRAND, Brand
from gateway.web.catalogue import MESSAGES, has, text

if TYPE_CHECKING:
    from gateway.call import Call

SESSION_COOKIE = "__Host-obgw-login"       # the authorization endpoint's login and consent steps
DASHBOARD_COOKIE = "__Host-obgw-dashboard"  # the consent dashboard
_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(default=True), auto_reload=False)
STYLESHEET = Markup((Path(__file__).parent / "static" / "obgw.css").read_text())
LANGUAGE_SECONDS = 365 * 86400  # the language cookie: a choice, not a credential
BANK_UNREACHABLE = "error.bank_unreachable"  # the page's text for backend.unavailable


@dataclass(frozen=True)
class View:
    """What a page is rendered with besides its own context: its language, the bank's brand, and the GET path that
    shows it again (where the language links point; None: no links)."""
    locale: str = locales.DEFAULT
    brand: Brand = DEFAULT_BRAND
    here: str | None = None
    settled: bool = False  # the language was asked for (query or cookie), not guessed from the browser
    # The language the cookie is to keep once the page is answered; one list per request, shared by the views
    # that replace this one meanwhile (`prefer`).
    remember: list[str] = field(default_factory=list)


_VIEW: ContextVar[View] = ContextVar("obgw_page_view", default=View())


async def in_language(request: Request, brand: Brand, here: str | None,
                      handle: Callable[[], Awaitable[Response]]) -> Response:
    """`handle()`'s response, its pages in the request's language (web.locales) under `brand`; a language asked
    for by `lang` is kept in the language cookie for the rest of the journey."""
    cookie = request.cookies.get(locales.COOKIE)
    locale, asked = locales.choose(request.query_params.get("lang"), cookie,
                                   request.headers.get("accept-language"))
    view = View(locale, brand, here, settled=asked or locales.supported(cookie) is not None,
                remember=[locale] if asked else [])
    token = _VIEW.set(view)
    try:
        response = await handle()
    finally:
        _VIEW.reset(token)
    if view.remember:
        response.set_cookie(locales.COOKIE, view.remember[-1], max_age=LANGUAGE_SECONDS, path="/", secure=True,
                            httponly=True, samesite="lax")
    return response


def locale() -> str:
    """The language of the page being answered."""
    return _VIEW.get().locale


def prefer(hint: str | None) -> None:
    """Speak `hint` (a locale, e.g. from the pushed request's ui_locales) unless the customer chose a language, and
    keep it for the rest of the journey."""
    view = _VIEW.get()
    if hint and not view.settled:
        _VIEW.set(View(hint, view.brand, view.here, settled=True, remember=view.remember))
        view.remember.append(hint)


def say(key: str, **values: object) -> str:
    """The catalogue's text for `key` in the page's language."""
    return text(locale(), key, **values)


def _translator(locale: str) -> Callable[..., Markup]:
    def t(key: str, **values: object) -> Markup:
        """The catalogue's text, HTML-escaped; values are escaped too unless they are markup (`tpp(name)`)."""
        return Markup(escape(MESSAGES[locale][key])).format(**values) if values else escape(MESSAGES[locale][key])
    return t


def _tpp(name: str) -> Markup:
    return Markup('<span class="tpp">{}</span>').format(name)


def _languages(view: View) -> list[dict[str, str | bool]]:
    """The language links: each language named in itself, pointing at this page again with `lang`."""
    if view.here is None:
        return []
    return [{"code": code, "href": f"{view.here}?{urlencode({'lang': code})}", "lang": locales.HTML_LANG[code],
             "label": text(code, "page.language_name"), "current": code == view.locale} for code in MESSAGES]


def _security_headers(style_nonce: str | None, form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    styles = f"'nonce-{style_nonce}'" if style_nonce else "'none'"
    images = "data:" if style_nonce else "'none'"
    forms = " ".join(("'self'", *form_targets))
    return {
        "Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY",
        "Content-Security-Policy": f"default-src 'none'; style-src {styles}; img-src {images}; "
                                   f"form-action {forms}; frame-ancestors 'none'; base-uri 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Strict-Transport-Security": "max-age=31536000",
    }


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page(template: str, status: int = 200, form_targets: tuple[str, ...] = (), **context) -> HTMLResponse:
    view = _VIEW.get()
    nonce = secrets.token_urlsafe(16)
    html = _TEMPLATES.get_template(template).render(
        style_nonce=nonce, stylesheet=STYLESHEET, brand=view.brand, html_lang=locales.HTML_LANG[view.locale],
        t=_translator(view.locale), tpp=_tpp, languages=_languages(view), **context)
    return HTMLResponse(html, status_code=status, headers=_security_headers(nonce, form_targets))


def redirect(location: str, status: int = 302) -> Response:
    return RedirectResponse(location, status_code=status, headers=_security_headers(None))


def set_session(response: Response, session_id: str, seconds: int, cookie: str = SESSION_COOKIE) -> Response:
    response.set_cookie(cookie, session_id, max_age=seconds, path="/", secure=True, httponly=True, samesite="lax")
    return response


def clear_session(response: Response, cookie: str = SESSION_COOKIE) -> Response:
    response.delete_cookie(cookie, path="/", secure=True, httponly=True, samesite="lax")
    return response


def refuse(call: Call, reason: str) -> None:
    """Mark the call refused under `reason`, which must be catalogued (a typo is a KeyError, as in Refusal)."""
    call.refuse(catalogued(reason))


def error_page(call: Call, reason: str, message: str | None = None, status: int | None = None) -> HTMLResponse:
    """The page of a step that cannot go on, audited under `reason`: refused, or an error when the status is 5xx.
    A page reason shows its catalogued status and text unless the step gives its own; any other reason (an OAuth
    error's, the bank's) needs the step's text, and is a 400 unless the step says otherwise. The step's text is a
    catalogue key, or else words from elsewhere (an OAuth error's description), shown as they are."""
    usual = PAGE_REASONS.get(catalogued(reason))
    if status is None:
        status = usual.status if usual else 400
    if message is None:
        if usual is None:
            raise KeyError(f"{reason} has no page text of its own: the step must give one")
        message = f"reason.{reason}"
    call.decision, call.reason = ("error" if status >= 500 else "refuse"), reason
    token = _VIEW.set(View(locale(), _VIEW.get().brand))  # no language links: the error is not shown again
    try:
        return page("error.html", status=status, message=say(message) if has(message) else message,
                    interaction_id=call.interaction_id)
    finally:
        _VIEW.reset(token)
