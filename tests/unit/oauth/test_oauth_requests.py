"""Starlette → Authlib request adaptation: form bodies that break the rules are an invalid_request, never a 500."""
from __future__ import annotations

import asyncio

import pytest
from authlib.oauth2.rfc6749 import InvalidRequestError

from gateway.oauth.requests import form_request

ISSUER = "https://as.obgw.test"


def _form(body: bytes):
    scope = {"method": "POST", "path": "/oauth2/token",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(form_request(scope, receive, ISSUER, None))


def test_a_repeated_parameter_is_named_in_the_refusal():
    with pytest.raises(InvalidRequestError, match="The parameter 'scope' is given more than once"):
        _form(b"grant_type=client_credentials&scope=a&scope=b")


@pytest.mark.parametrize("name", ["%C3%8C", "a%22b", "a%5Cb", "%0A"])
def test_a_repeated_parameter_whose_name_cannot_be_in_an_error_description_is_still_an_invalid_request(name):
    # schemathesis found this: Authlib refuses such an error_description (RFC 6749 §5.2), which was a 500.
    with pytest.raises(InvalidRequestError, match="^invalid_request: The parameter is given more than once"):
        _form(f"token=q&{name}=x&{name}=y".encode())
