"""Open-banking traffic for locust: TPPs, each with its own client certificate, doing what TPPs do all day.

    LOADTEST_FIXTURE=loadtests/results/fixture/fixture.json \\
        locust -f loadtests/locustfile.py --headless -u 24 -r 4 -t 2m --html loadtests/results/locust.html

(`make loadtest` starts a stack of its own, builds the fixture and runs this; see loadtests/README.md.) The fixture
(`fixture.py`) registered the TPPs and authorised their consents through the real pages. Every locust user is one
of those TPPs (round robin) and presents that TPP's certificate on every connection. The mix, by user class:

- CustomerApp (6): the customer is in the app: accounts, balances, transactions (`x-fapi-customer-ip-address`);
- BatchRefresh (2): overnight refreshes without the customer, on consents this user alone holds: the 5th call on a
  consent within a day is refused (PSD2 RTS Art. 36(5), `policies/limits.yaml`);
- ConsentBurst (1): a TPP onboarding customers: consents created in bursts, then withdrawn; over the
  consent-creation tier's burst they are refused;
- Payer (1): one payment per authorised payment consent, sent three times with one idempotency key (a TPP retrying
  after a timeout): all three must answer the same payment;
- Revoker (1): the customer withdraws a consent mid-run; its token must be refused from the very next call.

A 429 counts as a success only where the policy predicts it: the unattended allowance after `unattended.calls`
calls on a consent this user alone has used, or a rate-limit refusal that names the TPP's tier policy
(`RateLimit-Policy` as limits.yaml defines it) with `Retry-After` of at least 1 second. Any other 429 is a failure.
Predicted refusals are tallied per kind and, with the number of requests sent, written beside the fixture
(`run.json`) when the run stops.
"""
from __future__ import annotations

import itertools
import json
import os
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from locust import HttpUser, between, events, task  # noqa: E402

from gateway.payments.jws import sign_detached  # noqa: E402
from gateway.policy import load_policy  # noqa: E402
from gateway.policy.model import DEFAULT_GROUP  # noqa: E402

FIXTURE_PATH = Path(os.environ.get("LOADTEST_FIXTURE", ROOT / "loadtests" / "results" / "fixture" / "fixture.json"))
POLICY_DIR = Path(os.environ.get("LOADTEST_POLICIES", ROOT / "policies"))
AISP = "/open-banking/v3.1/aisp"
PISP = "/open-banking/v3.1/pisp"

FIXTURE = json.loads(FIXTURE_PATH.read_text())
POLICY = load_policy(POLICY_DIR, {})
ALLOWANCE = POLICY.unattended.calls
TPPS = itertools.cycle(FIXTURE["tpps"])
# Consents a user takes for itself (never shared, so it can predict what the gateway answers), per TPP.
POOLS = {kind: {tpp["client_id"]: list(tpp[kind]) for tpp in FIXTURE["tpps"]}
         for kind in ("unattended", "revocable", "payments")}
PREDICTED: Counter = Counter()
IDLE: Counter = Counter()


def _rate_policies() -> set[str]:
    """Every `RateLimit-Policy` the policy can send: per route group and tier (gcra.lua names them so)."""
    limits = POLICY.limits
    return {f'"{tier if group == DEFAULT_GROUP else f"{tier}.{group}"}";q={limit.burst};w={limit.window_seconds}'
            for group in (DEFAULT_GROUP, *limits.groups) for tier, limit in limits.for_route_group(group).items()
            if limit is not None}


RATE_POLICIES = _rate_policies()


def predicted_rate_limit(response) -> bool:
    """A 429 the tier policy explains: a RateLimit-Policy that limits.yaml defines, none left, Retry-After ≥ 1."""
    retry = response.headers.get("Retry-After", "")
    return (response.headers.get("RateLimit-Policy") in RATE_POLICIES and retry.isdigit() and int(retry) >= 1
            and ";r=0;" in response.headers.get("RateLimit", "") + ";")


class TppUser(HttpUser):
    """One TPP's app: its certificate on every connection, its consents and tokens from the fixture."""

    abstract = True
    wait_time = between(0.2, 1.0)
    host = FIXTURE["gateway"]

    def on_start(self) -> None:
        self.tpp = next(TPPS)
        self.client.cert = (self.tpp["cert"], self.tpp["key"])
        self.client.verify = FIXTURE["ca"]
        self._cc: tuple[float, str] | None = None

    def take(self, kind: str) -> dict | None:
        """One of this TPP's consents of `kind` for this user alone, or None when they are all taken."""
        pool = POOLS[kind][self.tpp["client_id"]]
        return pool.pop() if pool else None

    def become_owner(self, kind: str) -> dict | None:
        """A consent of `kind` from any TPP that has one left (this user becomes that TPP), else None."""
        for tpp in [self.tpp, *FIXTURE["tpps"]]:
            if POOLS[kind][tpp["client_id"]]:
                self.tpp = tpp
                self.client.cert = (tpp["cert"], tpp["key"])
                return self.take(kind)
        IDLE[kind] += 1  # more users of this kind than consents for them: reported, not silent
        return None

    def bearer(self, token: str, present: bool = True) -> dict:
        return {"Authorization": f"Bearer {token}", **(FIXTURE["customer_present"] if present else {})}

    def client_credentials(self, scope: str = "accounts") -> str:
        """A client-credentials token (tls_client_auth: the certificate is the credential), reused until near expiry."""
        if self._cc is None or self._cc[0] < time.time() + 30:
            data = {"grant_type": "client_credentials", "scope": scope, "client_id": self.tpp["client_id"]}
            if self.tpp["auth"] == "private_key_jwt":
                data.update(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            client_assertion=self.assertion())
            answer = self.client.post("/oauth2/token", data=data, name="POST /oauth2/token (client_credentials)")
            answer.raise_for_status()
            token = answer.json()
            self._cc = (time.time() + token["expires_in"], token["access_token"])
        return self._cc[1]

    def assertion(self) -> str:
        """RFC 7523 private_key_jwt client assertion, signed with the TPP's registered key."""
        import jwt
        now = int(time.time())
        claims = {"iss": self.tpp["client_id"], "sub": self.tpp["client_id"], "aud": self.host,
                  "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 60}
        return jwt.encode(claims, jwt.PyJWK(self.tpp["private_jwk"]).key, "ES256",
                          headers={"kid": self.tpp["private_jwk"]["kid"]})

    def expect(self, response, statuses: tuple[int, ...], kind: str | None = None) -> None:
        """Pass if the status is one wanted; a 429 also if the policy predicts it (tallied under `kind`)."""
        if response.status_code in statuses:
            response.success()
        elif response.status_code == 429 and predicted_rate_limit(response):
            PREDICTED["rate limit"] += 1
            response.success()
        else:
            response.failure(f"{response.status_code} {response.text[:200]}")


class CustomerApp(TppUser):
    weight = 6

    @task(3)
    def balances(self) -> None:
        consent = secrets.choice(self.tpp["reads"])
        account = secrets.choice(consent["account_ids"])
        with self.client.get(f"{AISP}/accounts/{account}/balances", headers=self.bearer(consent["access_token"]),
                             name="GET balances", catch_response=True) as response:
            self.expect(response, (200,))

    @task(2)
    def accounts(self) -> None:
        consent = secrets.choice(self.tpp["reads"])
        with self.client.get(f"{AISP}/accounts", headers=self.bearer(consent["access_token"]),
                             name="GET accounts", catch_response=True) as response:
            self.expect(response, (200,))

    @task(1)
    def transactions(self) -> None:
        consent = secrets.choice(self.tpp["reads"])
        account = secrets.choice(consent["account_ids"])
        with self.client.get(f"{AISP}/accounts/{account}/transactions", headers=self.bearer(consent["access_token"]),
                             name="GET transactions", catch_response=True) as response:
            self.expect(response, (200,))


class BatchRefresh(TppUser):
    """Unattended reads on consents this user alone holds, so it knows when the allowance is spent."""

    weight = 2
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        super().on_start()
        self.owned = self.become_owner("unattended")
        self.calls = 0

    @task
    def refresh(self) -> None:
        consent = self.owned
        if consent is None:
            return
        self.calls += 1
        account = consent["account_ids"][0]
        with self.client.get(f"{AISP}/accounts/{account}/balances",
                             headers=self.bearer(consent["access_token"], present=False),
                             name="GET balances (unattended)", catch_response=True) as response:
            if self.calls > ALLOWANCE and response.status_code == 429 \
                    and response.json()["Errors"][0]["ErrorCode"] == "OBGW.Rules.UnattendedAccessLimit":
                PREDICTED["unattended allowance"] += 1
                response.success()
            else:
                self.expect(response, (200,) if self.calls <= ALLOWANCE else ())


class ConsentBurst(TppUser):
    weight = 1
    wait_time = between(3, 6)

    @task
    def onboard(self) -> None:
        token = self.client_credentials()
        body = {"Data": {"Permissions": ["ReadAccountsBasic", "ReadBalances"]}, "Risk": {}}
        for _ in range(12):  # over the consent-creation tier's burst of 10: the last ones are refused (predicted)
            with self.client.post(f"{AISP}/account-access-consents", json=body, headers=self.bearer(token, False),
                                  name="POST account-access-consents", catch_response=True) as response:
                self.expect(response, (201,))
                created = response.json()["Data"]["ConsentId"] if response.status_code == 201 else None
            if created:
                with self.client.delete(f"{AISP}/account-access-consents/{created}", headers=self.bearer(token, False),
                                        name="DELETE account-access-consents", catch_response=True) as response:
                    self.expect(response, (204,))


class Payer(TppUser):
    """Pays each authorised consent once, sending the payment three times with one idempotency key."""

    weight = 1
    wait_time = between(1, 3)

    @task
    def pay(self) -> None:
        consent = self.take("payments")
        if consent is None:
            return
        tpp = self.tpp
        body = json.dumps({"Data": {"ConsentId": consent["consent_id"], "Initiation": consent["initiation"]},
                           "Risk": {}}, separators=(",", ":")).encode()
        headers = {**self.bearer(consent["access_token"]), "content-type": "application/json",
                   "x-idempotency-key": secrets.token_hex(12),
                   "x-jws-signature": sign_detached(body, tpp["private_jwk"], tpp["client_id"])}
        seen = set()
        for attempt in ("first", "retry", "retry"):
            with self.client.post(f"{PISP}/domestic-payments", data=body, headers=headers,
                                  name=f"POST domestic-payments ({attempt})", catch_response=True) as response:
                self.expect(response, (201,))
                if response.status_code == 201:
                    seen.add(response.json()["Data"]["DomesticPaymentId"])
        if len(seen) > 1:
            events.request.fire(request_type="CHECK", name="one payment per idempotency key", response_time=0,
                                response_length=0, exception=AssertionError(f"paid {len(seen)} times: {seen}"))


class Revoker(TppUser):
    """The customer withdraws a consent (the TPP deletes it); its token must stop working at once."""

    weight = 1
    wait_time = between(2, 5)

    @task
    def revoke(self) -> None:
        consent = self.take("revocable")
        if consent is None:
            return
        with self.client.get(f"{AISP}/accounts", headers=self.bearer(consent["access_token"]),
                             name="GET accounts (before revocation)", catch_response=True) as response:
            self.expect(response, (200,))
        token = self.client_credentials()
        with self.client.delete(f"{AISP}/account-access-consents/{consent['consent_id']}",
                                headers=self.bearer(token, False), name="DELETE account-access-consents (revoke)",
                                catch_response=True) as response:
            self.expect(response, (204,))
        with self.client.get(f"{AISP}/accounts", headers=self.bearer(consent["access_token"]),
                             name="GET accounts (after revocation: 403 expected)", catch_response=True) as response:
            if response.status_code == 403:
                PREDICTED["revoked consent refused"] += 1
                response.success()
            else:
                response.failure(f"a revoked consent's token got {response.status_code}")


SENT = Counter()


@events.request.add_listener
def _count(request_type: str, **_kwargs) -> None:
    if request_type != "CHECK":  # a check of answers already counted, not a request
        SENT["requests"] += 1


@events.quitting.add_listener
def _report(environment, **_kwargs) -> None:
    """What the run did, beside the fixture: requests sent (each must have an audit record) and refusals predicted."""
    summary = {"requests": SENT["requests"], "predicted_refusals": dict(PREDICTED), "idle_users": dict(IDLE)}
    print(f"locustfile: {summary}", flush=True)
    (FIXTURE_PATH.parent / "run.json").write_text(json.dumps(summary, indent=1) + "\n")
