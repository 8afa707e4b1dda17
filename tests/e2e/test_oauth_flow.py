"""The whole TPP flow with Authlib's client over real mutual TLS, against `obgw serve` and the sandbox bank."""
from __future__ import annotations

import pytest

from support.gateway import Gateway, gateway_env
from support.processes import ROOT
from support.tpp import ACCOUNTS, Tpp

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, bank):
    root = tmp_path_factory.mktemp("gw")
    accounts, payments = bank
    gw = Gateway(gateway_env(root / "var", pki, ROOT / "policies", OBGW_SERVICE_ACCOUNTS_URL=accounts,
                             OBGW_SERVICE_PAYMENTS_URL=payments, OBGW_DIRECTORY_JWKS=str(pki / "directory-jwks.json")))
    gw.register_tpps(pki)
    yield gw
    assert gw.stop() == 0


@pytest.mark.parametrize("auth", ["tls_client_auth", "private_key_jwt"])
def test_the_whole_flow_gives_a_token_that_reads_the_consented_accounts(gateway, pki, auth):
    tpp = Tpp(gateway.base, pki, "tpp-demo", auth=auth)
    token = tpp.consent_token(["ReadAccountsBasic"])
    response = tpp.get(ACCOUNTS, token)
    assert response.status_code == 200, response.text
    assert {a["AccountId"] for a in response.json()["Data"]["Account"]} >= {"acc-alice-current"}
    tpp.close()
