"""DPoP (RFC 9449) through `obgw serve` with two workers: a TPP registered for DPoP gets `token_type: DPoP` tokens
bound to its proof key (`cnf.jkt`) - at the token endpoint after the server's nonce - creates a consent, pushes,
exchanges the code and reads accounts with a fresh proof each call; a replayed proof, a proof for another URL, a
proof by another key and the token sent as a Bearer token are refused on every worker. The proofs are made with
joserfc, as a TPP's library would."""
from __future__ import annotations

import json
import secrets
import time

import httpx
import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from support.faults import call, records_by_interaction, until_every_worker, workers
from support.gateway import client_context
from support.tpp import Tpp

from gateway.oauth.dpop import access_token_hash

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
CONSENTS = "/open-banking/v3.1/aisp/account-access-consents"
KEY = ECKey.generate_key("P-256")


@pytest.fixture(scope="module")
def dpop_tpp(gateway, pki):
    """tpp-demo registered for DPoP-bound tokens (its certificate still authenticates it)."""
    registration = json.loads((pki / "tpp-demo.json").read_text())
    done = gateway.cli("clients", "add", "tpp-demo", "--replace", "--cert", str(pki / "tpp-demo.pem"),
                       "--redirect-uri", registration["redirect_uri"], "--name", "Demo TPP", "--dpop")
    assert done.returncode == 0, done.stderr
    assert gateway.cli("clients", "set-tier", "tpp-demo", "unlimited").returncode == 0
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    yield tpp
    tpp.close()


def proof(method: str, url: str, token: str | None = None, key: ECKey = KEY, nonce: str | None = None) -> str:
    claims = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": int(time.time())}
    if token is not None:
        claims["ath"] = access_token_hash(token)
    if nonce is not None:
        claims["nonce"] = nonce
    return jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}, claims, key)


def token_with_proof(tpp: Tpp, **form) -> dict:
    """A token request with a DPoP proof: the first is answered use_dpop_nonce with the server's nonce; the
    retry carries it (RFC 9449 §8)."""
    endpoint = tpp.metadata["token_endpoint"]
    answer = tpp.oauth.request("POST", endpoint, data=form, headers={"DPoP": proof("POST", endpoint)},
                               withhold_token=True, auth=tpp.oauth.client_auth(tpp.auth))
    assert answer.status_code == 400 and answer.json()["error"] == "use_dpop_nonce", answer.text
    nonce = answer.headers["DPoP-Nonce"]
    again = tpp.oauth.request("POST", endpoint, data=form, headers={"DPoP": proof("POST", endpoint, nonce=nonce)},
                              withhold_token=True, auth=tpp.oauth.client_auth(tpp.auth))
    assert again.status_code == 200, again.text
    return again.json()


def dpop_headers(method: str, url: str, token: str, **kwargs) -> dict:
    return {"Authorization": f"DPoP {token}", "DPoP": proof(method, url, token, **kwargs)}


@pytest.fixture(scope="module")
def bound(dpop_tpp, gateway, pki) -> str:
    """An account-information token of a consent, DPoP-bound to KEY, through the whole flow."""
    tpp = dpop_tpp
    cc = token_with_proof(tpp, grant_type="client_credentials", scope="accounts")
    assert cc["token_type"] == "DPoP"
    assert pyjwt.decode(cc["access_token"], options={"verify_signature": False})["cnf"] == {"jkt": KEY.thumbprint()}
    body = {"Data": {"Permissions": ["ReadAccountsBasic"]}, "Risk": {}}
    created = tpp.http.post(gateway.base + CONSENTS, json=body,
                            headers=dpop_headers("POST", gateway.base + CONSENTS, cc["access_token"]))
    assert created.status_code == 201, created.text
    consent_id = created.json()["Data"]["ConsentId"]
    redirect, pushed = tpp.approve(consent_id)
    token = token_with_proof(tpp, grant_type="authorization_code", code=redirect["code"],
                             redirect_uri=tpp.redirect_uri, code_verifier=pushed.code_verifier)
    assert token["token_type"] == "DPoP"
    return token["access_token"]


def test_a_dpop_bound_token_reads_the_consented_accounts_with_a_fresh_proof_each_call(gateway, pki, bound):
    context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
    url = gateway.base + ACCOUNTS
    answers = until_every_worker(
        lambda: call(gateway, context, "GET", ACCOUNTS, headers=dpop_headers("GET", url, bound)),
        workers(gateway), lambda a: a.status == 200, each=2)
    assert {a.status for a in answers} == {200}


@pytest.mark.parametrize("case", ["replayed", "other url", "other key", "bearer", "no proof"])
def test_what_is_not_a_proof_of_the_bound_key_for_this_call_is_refused_on_every_worker(gateway, pki, bound, case):
    context = client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")
    url = gateway.base + ACCOUNTS
    used = dpop_headers("GET", url, bound)
    if case == "replayed":
        with httpx.Client(verify=context) as http:
            assert http.get(url, headers=used).status_code == 200

    def attempt():
        headers = {
            "replayed": used,
            "other url": dpop_headers("GET", gateway.base + "/open-banking/v3.1/aisp/balances", bound),
            "other key": dpop_headers("GET", url, bound, key=ECKey.generate_key("P-256")),
            "bearer": {"Authorization": f"Bearer {bound}"},
            "no proof": {"Authorization": f"DPoP {bound}"},
        }[case]
        return call(gateway, context, "GET", ACCOUNTS, headers=headers)

    answers = until_every_worker(attempt, workers(gateway), lambda a: a.status == 401)
    assert {a.status for a in answers} == {401}
    challenge = answers[-1].response.headers["www-authenticate"]
    assert challenge.startswith("DPoP" if case != "bearer" else ("DPoP", "Bearer")), challenge
    reasons = {"replayed": "token.dpop_replayed", "other url": "token.dpop_invalid", "other key": "token.dpop_mismatch",
               "bearer": "token.dpop_required", "no proof": "token.dpop_invalid"}
    found = records_by_interaction(gateway, [a.interaction_id for a in answers])
    assert {record["reason"] for records in found.values() for record in records} == {reasons[case]}
