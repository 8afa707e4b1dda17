"""Rendering customer pages with the headers every one of them carries, the session cookie, and the error page of a
refused step (audited under a catalogued reason: `errors.PAGE_REASONS`, or any other `errors.REFUSAL_REASONS` id).

- `Cache-Control: no-store` (a shared computer never shows a consent page from its cache);
- anti-framing twice over: `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'` (clickjacking);
- a CSP that allows no script at all, styles only by a per-page nonce, and forms only to this origin and, on the
  consent page, to the TPP's redirect origin (browsers apply `form-action` to the redirect that follows a POST);
- `Strict-Transport-Security: max-age=31536000` (RFC 6797): a browser that has seen one page goes to this host only
  over HTTPS for a year, so an attacker on the path cannot strip TLS from a later visit. Browsers ignore it for an
  IP-address host (§8.1.1) and honour it once the gateway is reached by name; no `includeSubDomains`, since the
  gateway speaks for no other host;
- the session and CSRF cookies are `__Host-` prefixed, `Secure`, `HttpOnly` and `SameSite=Lax`.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.errors import PAGE_REASONS, catalogued

if TYPE_CHECKING:
    from gateway.call import Call

SESSION_COOKIE = "__Host-obgw-login"       # the authorization endpoint's login and consent steps
DASHBOARD_COOKIE = "__Host-obgw-dashboard"  # the consent dashboard
_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(default=True), auto_reload=False)
BANK_UNREACHABLE = "Your bank cannot be reached. Try again later."  # the page's text for backend.unavailable


def _security_headers(style_nonce: str | None, form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    styles = f"'nonce-{style_nonce}'" if style_nonce else "'none'"
    forms = " ".join(("'self'", *form_targets))
    return {
        "Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY",
        "Content-Security-Policy": f"default-src 'none'; style-src {styles}; form-action {forms}; "
                                   "frame-ancestors 'none'; base-uri 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Strict-Transport-Security": "max-age=31536000",
    }


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page(template: str, status: int = 200, form_targets: tuple[str, ...] = (), **context) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _TEMPLATES.get_template(template).render(style_nonce=nonce, **context)
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
    error's, the bank's) needs the step's text, and is a 400 unless the step says otherwise."""
    usual = PAGE_REASONS.get(catalogued(reason))
    if status is None:
        status = usual.status if usual else 400
    if message is None:
        message = PAGE_REASONS[reason].message
    call.decision, call.reason = ("error" if status >= 500 else "refuse"), reason
    return page("error.html", status=status, message=message, interaction_id=call.interaction_id)
