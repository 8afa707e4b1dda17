"""The consent API's route ids are declared once (`policy.model.CONSENT_API`): every consent-API route the app serves,
and every method its resource answers, has a route id the policy knows, so limits.yaml can put it in a route group.

The app is built in-process as a worker builds it; it needs no Redis until it is called.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from starlette.routing import Route, Router
from support.ports import free_port

from gateway.app import create_app
from gateway.consents.api import AccountAccessConsents, FundsConfirmationConsents, PaymentConsents
from gateway.consents.payment_kinds import PAYMENT_KINDS
from gateway.events.api import EVENTS_API
from gateway.pipeline.endpoint import ResourceEndpoint
from gateway.policy import PolicyError, load_policy
from gateway.policy.model import CONSENT_API, CONSENT_API_ROUTE_IDS
from gateway.settings import Settings
from gateway.usage import TPP_USAGE

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def _router(app) -> Router:
    """The app's router, under its middleware (each keeps the app it wraps as `app`)."""
    while not isinstance(app, Router):
        app = app.app
    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory, pki) -> dict[str, ResourceEndpoint]:
    """The consent-API routes the app serves: path template → endpoint."""
    settings = Settings.load(environ={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                                      "OBGW_VAR_DIR": str(tmp_path_factory.mktemp("var")),
                                      "OBGW_POLICY_DIR": str(POLICIES), "OBGW_CLIENT_CA": str(pki / "ca.pem")})
    return {route.path: route.app for route in _router(create_app(settings)).routes
            if isinstance(route, Route) and isinstance(route.app, ResourceEndpoint)}


def test_every_consent_api_route_the_app_serves_is_the_policys(served):
    # The Events API's and a TPP's statement (`/tpp/usage`): tables of their own.
    assert set(served) == set(CONSENT_API) | set(EVENTS_API) | {TPP_USAGE}
    assert all(endpoint.template == path for path, endpoint in served.items())  # audited under its template


RESOURCES = [AccountAccessConsents(None, "", 60, None), FundsConfirmationConsents(None, "", 60, None),
             *(PaymentConsents(kind, None, "", 60, None) for kind in PAYMENT_KINDS.values())]


@pytest.mark.parametrize("resource", RESOURCES, ids=[resource.base for resource in RESOURCES])
def test_every_method_a_consent_resource_answers_has_a_route_id(resource):
    answered = {(resource.base, "POST"), *((resource.base + "/{ConsentId}", method) for method in resource.methods)}
    declared = {(path, method) for path, (_, route_ids) in CONSENT_API.items() for method in route_ids
                if path in (resource.base, resource.base + "/{ConsentId}")}
    assert answered == declared


def test_route_groups_may_name_every_consent_api_route_and_nothing_else(tmp_path):
    shutil.copytree(POLICIES, tmp_path, dirs_exist_ok=True)
    limits = tmp_path / "limits.yaml"
    text = limits.read_text().replace("routes: [ais.consents.create]", f"routes: [{', '.join(CONSENT_API_ROUTE_IDS)}]")
    limits.write_text(text)
    assert load_policy(tmp_path).limits.group_of.keys() == CONSENT_API_ROUTE_IDS
    limits.write_text(text.replace("ais.consents.get", "ais.consents.list"))
    with pytest.raises(PolicyError, match="unknown route 'ais.consents.list'"):
        load_policy(tmp_path)
