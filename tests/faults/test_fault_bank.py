"""The bank's back-end crashes (SIGKILL), hangs (SIGSTOP: connections are accepted, nothing is answered) and
answers garbage, under `obgw serve --workers 2` with the shipped routes and field rules: the TPP gets a clean UK OB
error each time (502/503/504, an `OBErrorResponse1` carrying its `x-fapi-interaction-id`, nothing of the garbage),
each worker's breaker opens after the configured 3 failures in a row and answers at once while open, no worker stays
stuck (once the fault ends, fresh connections are served on every worker within seconds), and every call is audited
exactly once.

tests/e2e/test_backend_protection.py proves the breaker against a test back-end with one worker; here the fault is
done to the sandbox bank itself, on both workers, and to the bytes of the answer."""
from __future__ import annotations

import shutil
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.faults import (
    Answer,
    Sandbox,
    call,
    records_by_interaction,
    until_every_worker,
    workers,
)
from support.gateway import Gateway, client_context, gateway_env
from support.openapi import assert_conforms
from support.processes import ROOT
from support.tpp import Browser, Tpp

pytestmark = pytest.mark.e2e

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
ODD = "/open-banking/v3.1/aisp/odd-bank/accounts"
TIMEOUT_S = 0.6        # services.yaml below: timeout_ms 600
OPEN_SECONDS = 2       # breaker: {failures: 3, open_seconds: 2}
AT_ONCE_S = 0.3        # an answer the gateway gives without waiting on the bank (a loaded 2-core machine)
MARKER = "ODD-BANK-GARBAGE"


def _write_policy(directory, sandbox: Sandbox, odd_bank: str) -> None:
    """The shipped routes and field rules, with small timeouts and breakers, and one more route like
    `ais.accounts.list` (same response type and field rules) to the odd bank."""
    directory.mkdir(parents=True)
    for name in ("fields.yaml", "limits.yaml"):
        shutil.copy(ROOT / "policies" / name, directory / name)
    (directory / "services.yaml").write_text(f"""format_version: 1
services:
  accounts:
    url: {sandbox.accounts_url}
    connect_timeout_ms: 300
    timeout_ms: {int(TIMEOUT_S * 1000)}
    breaker: {{failures: 3, open_seconds: {OPEN_SECONDS}}}
  payments:
    url: {sandbox.payments_url}
  oddbank:
    url: {odd_bank}
    connect_timeout_ms: 300
    timeout_ms: {int(TIMEOUT_S * 1000)}
    breaker: {{failures: 3, open_seconds: {OPEN_SECONDS}}}
""")
    (directory / "routes.yaml").write_text((ROOT / "policies" / "routes.yaml").read_text() + f"""
  - id: test.odd_bank.accounts
    method: GET
    path: {ODD}
    service: oddbank
    upstream_path: /accounts
    scope: accounts
    permissions: [ReadAccountsBasic, ReadAccountsDetail]
    selected_accounts_param: account_ids
    response_type: OBReadAccount6
""")


@pytest.fixture(scope="module")
def sandbox():
    bank = Sandbox()
    bank.start()
    yield bank
    bank.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, sandbox, odd_bank):
    root = tmp_path_factory.mktemp("gw")
    _write_policy(root / "policies", sandbox, odd_bank)
    gw = Gateway(gateway_env(root / "var", pki, root / "policies"), workers=2)
    try:
        gw.register_tpps(pki, names=("tpp-demo",))
        assert gw.cli("clients", "set-tier", "tpp-demo", "unlimited").returncode == 0
    except BaseException:
        gw.stop()
        raise
    yield gw
    assert gw.stop() == 0


@pytest.fixture(scope="module")
def token(gateway, pki) -> str:
    tpp = Tpp(gateway.base, pki, "tpp-demo")
    try:
        return tpp.consent_token(["ReadAccountsBasic"], accounts=["acc-alice-current"])["access_token"]
    finally:
        tpp.close()


@pytest.fixture(scope="module")
def context(pki):
    return client_context(pki / "ca.pem", pki / "tpp-demo.pem", pki / "tpp-demo.key")


def _ok(answer: Answer) -> bool:
    return answer.status == 200


def _circuit_open(answer: Answer) -> bool:
    return answer.status == 503 and answer.response.headers.get("retry-after") is not None


def _assert_clean_error(answer: Answer, statuses=(502, 503, 504)) -> None:
    """What a TPP may be told when the bank fails: a UK OB error naming its interaction, nothing of the bank's."""
    assert answer.error is None, f"the connection failed instead of an answer: {answer.error!r}"
    response = answer.response
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["x-fapi-interaction-id"] == answer.interaction_id
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert_conforms(body, "OBErrorResponse1")
    assert body["Id"] == answer.interaction_id and body["Errors"][0]["ErrorCode"] == "UK.OBIE.UnexpectedError"
    assert MARKER not in response.text and "Traceback" not in response.text


def _by_worker(answers: list[Answer]) -> dict[int, list[Answer]]:
    grouped: dict[int, list[Answer]] = defaultdict(list)
    for answer in sorted(answers, key=lambda a: a.ended):
        grouped[answer.worker].append(answer)
    return grouped


def _assert_audited_once(gateway, answers: list[Answer]) -> dict[str, dict]:
    """Every answered call has exactly one audit record, with the status the TPP saw; returns them by id."""
    answered = [a for a in answers if a.response is not None]
    found = records_by_interaction(gateway, [a.interaction_id for a in answered])
    assert {i: len(r) for i, r in found.items() if len(r) != 1} == {}
    for answer in answered:
        assert found[answer.interaction_id][0]["status"] == answer.status
    return {i: r[0] for i, r in found.items()}


def _recovered(gateway, get, live: set[int]) -> list[Answer]:
    """Once the fault is over: fresh connections are served 200 on every worker within a bounded time (the open
    breakers let their probe through after OPEN_SECONDS)."""
    answers = until_every_worker(get, live, _ok, each=2, max_calls=120, seconds=OPEN_SECONDS + 10, pause=0.1)
    for answer in answers:
        if answer.status != 200:
            _assert_clean_error(answer, (503,))  # still open, or its probe in flight: at once, never stuck
            assert answer.seconds < AT_ONCE_S + TIMEOUT_S
    return answers


def test_a_killed_bank_is_a_clean_502_until_the_breaker_opens_and_every_worker_serves_again_when_it_returns(
        gateway, sandbox, token, context, pki):
    def get() -> Answer:
        return call(gateway, context, "GET", ACCOUNTS, token)

    live = workers(gateway)
    assert len(live) == 2
    before = until_every_worker(get, live, _ok)          # both breakers closed, both pools holding a connection
    sandbox.kill()
    try:
        during = until_every_worker(get, live, _circuit_open, each=2, max_calls=60)
        # The customer, logging in meanwhile, gets a page saying the bank cannot be reached: not a 500.
        browser = Browser(gateway.base, pki)
        try:
            form = browser.http.get(gateway.base + "/login")
            login = browser.submit(form, {"username": "alice", "password": "alice-pass"})
        finally:
            browser.close()
        assert form.status_code == 200 and login.status_code == 502 and "cannot be reached" in login.text
    finally:
        sandbox.start()
    after = _recovered(gateway, get, live)

    for answer in during:
        _assert_clean_error(answer, (502, 503))
    records = _assert_audited_once(gateway, before + during + after)
    for pid, answers in _by_worker(during).items():
        statuses = [a.status for a in answers]
        # The configured 3 failures in a row, then the open breaker answers at once without trying the bank.
        assert statuses[:4] == [502, 502, 502, 503], (pid, statuses)
        reasons = [records[a.interaction_id]["reason"] for a in answers[:4]]
        assert set(reasons[:3]) <= {"backend.unavailable", "backend.unanswered"} and \
            reasons[3] == "backend.circuit_open", reasons
        assert all(a.seconds < AT_ONCE_S for a in answers[3:] if a.status == 503), [a.seconds for a in answers]


def test_a_hung_bank_times_out_within_the_route_timeout_opens_the_breaker_and_leaves_no_worker_stuck(
        gateway, sandbox, token, context):
    def get() -> Answer:
        return call(gateway, context, "GET", ACCOUNTS, token)

    live = workers(gateway)
    before = until_every_worker(get, live, _ok)
    sandbox.pause()  # SIGSTOP: the kernel still accepts its connections; nothing reads or answers them
    try:
        with ThreadPoolExecutor(6) as pool:  # calls in flight at once on both workers: each one ends on time
            at_once = list(pool.map(lambda _: get(), range(12)))
        during = at_once + until_every_worker(get, live, _circuit_open, each=2, max_calls=40)
    finally:
        sandbox.resume()
    after = _recovered(gateway, get, live)

    records = _assert_audited_once(gateway, before + during + after)
    for answer in during:
        _assert_clean_error(answer, (503, 504))
        if answer.status == 504:  # the route's 600 ms (not the 5 s default), then the worker moves on
            assert TIMEOUT_S <= answer.seconds < TIMEOUT_S + 3, answer.seconds
            assert records[answer.interaction_id]["reason"] == "backend.timeout"
        else:
            assert answer.seconds < AT_ONCE_S, answer.seconds
            assert records[answer.interaction_id]["reason"] == "backend.circuit_open"
    for pid, answers in _by_worker(during).items():
        statuses = [a.status for a in answers]
        first_open = statuses.index(503)
        assert statuses[:first_open].count(504) >= 3, (pid, statuses)


GARBAGE = {  # what the odd bank answers → the status and audit reason the TPP's call ends with
    "not-json": (502, "minimise.failed"),
    "wrong-shape": (502, "minimise.failed"),
    "truncated": (502, "backend.unanswered"),
    "bad-length": (502, "backend.unanswered"),
    "bad-chunks": (502, "backend.unanswered"),
    "bad-gzip": (502, "backend.unanswered"),
    "not-http": (502, "backend.unanswered"),
    "hang-up": (502, "backend.unanswered"),
    "stall-body": (504, "backend.timeout"),
}


def test_a_bank_answering_garbage_gets_the_tpp_a_clean_502_or_504_and_nothing_of_the_garbage(
        gateway, token, context):
    import httpx
    answers: list[tuple[str, Answer, Answer]] = []
    with httpx.Client(verify=context, timeout=15) as kept_alive:  # each garbage answer, then a good one, one worker
        for fault in [*GARBAGE, "overlong"]:
            bad = call(gateway, context, "GET", ODD, token, client=kept_alive, params={"fault": fault})
            good = call(gateway, context, "GET", ODD, token, client=kept_alive, params={"fault": "ok"})
            answers.append((fault, bad, good))

    records = _assert_audited_once(gateway, [a for _, bad, good in answers for a in (bad, good)])
    for fault, bad, good in answers:
        if fault == "overlong":  # the declared length is the answer; the bytes after it are never read as one
            assert bad.status == 200, bad.response.text
        else:
            _assert_clean_error(bad, (GARBAGE[fault][0],))
            assert records[bad.interaction_id]["reason"] == GARBAGE[fault][1], (fault, records[bad.interaction_id])
        # The very next call is answered from the bank's next answer: nothing of the garbage is left in the pool.
        for answer in (bad, good):
            if answer.status == 200:
                body = answer.response.json()
                assert [a["AccountId"] for a in body["Data"]["Account"]] == ["acc-alice-current"], body
                assert MARKER not in answer.response.text, (fault, answer.response.text)
        assert good.status == 200, (fault, good.response.text)


def test_garbled_answers_in_a_row_open_the_breaker_on_each_worker_and_it_closes_when_the_bank_heals(
        gateway, token, context):
    def get(fault: str) -> Answer:
        return call(gateway, context, "GET", ODD, token, params={"fault": fault})

    live = workers(gateway)
    before = until_every_worker(lambda: get("ok"), live, _ok)
    during = until_every_worker(lambda: get("truncated"), live, _circuit_open, each=2, max_calls=40)
    after = _recovered(gateway, lambda: get("ok"), live)

    records = _assert_audited_once(gateway, before + during + after)
    for pid, answers in _by_worker(during).items():
        assert [a.status for a in answers][:4] == [502, 502, 502, 503], (pid, [a.status for a in answers])
        assert [records[a.interaction_id]["reason"] for a in answers[:4]] == \
            ["backend.unanswered"] * 3 + ["backend.circuit_open"]
        for answer in answers:
            _assert_clean_error(answer, (502, 503))


def test_a_bank_error_page_in_a_4xx_reaches_the_tpp_as_a_uk_ob_error_and_not_as_the_banks_bytes(
        gateway, token, context):
    answer = call(gateway, context, "GET", ODD, token, params={"fault": "html-400"})
    [record] = _assert_audited_once(gateway, [answer]).values()
    assert answer.status == record["status"]
    assert MARKER not in answer.response.text and "Traceback" not in answer.response.text, answer.response.text
    assert answer.response.headers["content-type"] == "application/json"
    assert_conforms(answer.response.json(), "OBErrorResponse1")
