"""The gateway on a real Redis Cluster (3 masters + 3 replicas) and behind a real Sentinel setup (issue 19, items 1-2):
the whole TPP flow, a master killed mid-load (fail closed, then served again, nothing paid twice, the audit chain
verifies, no acknowledged record lost), a TPP's slot moved to another master during load."""
from __future__ import annotations

import secrets
import threading
import time

import httpx
import pytest
from support.faults import records_by_interaction
from support.gateway import bank_gateway
from support.tpp import Tpp, domestic_initiation
from topology import wait_until

from gateway.store import names

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ACCOUNTS = "/open-banking/v3.1/aisp/accounts"
CALLS, SECONDS = 200, 10.0  # the load: at most CALLS reads spread over about SECONDS, on 2 threads


def _payments_made(state) -> int:
    return sum(1 for line in state.read_text().splitlines() if line.strip()) if state.exists() else 0


class Load:
    """At most CALLS reads of the accounts list over about SECONDS, from 2 threads; every answer's status and
    interaction id kept."""

    def __init__(self, tpp: Tpp, token: dict) -> None:
        self.tpp, self.token = tpp, token
        self.answers: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(CALLS // 2,)) for _ in range(2)]

    def _run(self, calls: int) -> None:
        pause = SECONDS / calls
        with httpx.Client(verify=self.tpp.context, timeout=10,
                          headers={"Authorization": f"Bearer {self.token['access_token']}",
                                   "x-fapi-customer-ip-address": "198.51.100.7"}) as http:
            for _ in range(calls):
                started = time.monotonic()
                try:
                    answer = http.get(self.tpp.base + ACCOUNTS)
                    with self._lock:
                        self.answers.append((answer.status_code, answer.headers.get("x-fapi-interaction-id", "")))
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                time.sleep(max(pause - (time.monotonic() - started), 0))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join(SECONDS * 6)

    def statuses(self) -> set[int]:
        return {status for status, _ in self.answers}

    def served(self) -> list[str]:
        return [interaction for status, interaction in self.answers if status == 200]


def _pay_until_answered(tpp: Tpp, token: dict, consent_id: str, initiation: dict, key: str, seconds: float = 30):
    """A TPP's retries of one payment with one idempotency key, until it is answered other than 503."""
    deadline = time.monotonic() + seconds
    while True:
        paid = tpp.pay(token, consent_id, initiation, key=key)
        if paid.status_code != 503 or time.monotonic() > deadline:
            return paid
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster_gateway(tmp_path_factory, pki, ledger, redis_cluster):
    gw = bank_gateway(tmp_path_factory.mktemp("gw"), pki, ledger[0], REDIS_URL=redis_cluster.url)
    yield gw
    assert gw.stop() == 0


def test_the_whole_flow_on_a_redis_cluster(cluster_gateway, pki, ledger, redis_cluster):
    tpp = Tpp(cluster_gateway.base, pki, "tpp-demo")
    try:
        token = tpp.consent_token()
        read = tpp.get(ACCOUNTS, token)
        assert read.status_code == 200, read.text
        before = _payments_made(ledger[1])
        initiation = domestic_initiation()
        consent = tpp.payment_consent(initiation)
        assert consent.status_code == 201, consent.text
        consent_id = consent.json()["Data"]["ConsentId"]
        pay_token = tpp.authorise_payment(consent_id, "alice")
        key = secrets.token_hex(8)
        paid = tpp.pay(pay_token, consent_id, initiation, key=key)
        assert paid.status_code == 201, paid.text
        again = tpp.pay(pay_token, consent_id, initiation, key=key)  # the TPP's retry: the same answer, paid once
        assert again.status_code == 201 and again.json() == paid.json()
        assert _payments_made(ledger[1]) == before + 1
    finally:
        tpp.close()
    # The keys really are spread over the masters: the TPP's under its hash tag, the audit log under {audit}.
    assert redis_cluster.master_of(names.client_tier("tpp-demo")) is not redis_cluster.master_of(names.AUDIT_STREAM) \
        or redis_cluster.master_of(names.CLIENTS) is not redis_cluster.master_of(names.AUDIT_STREAM)
    done = cluster_gateway.cli("audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_master_killed_mid_load_fails_closed_then_serves_and_pays_once(cluster_gateway, pki, ledger,
                                                                         redis_cluster):
    tpp = Tpp(cluster_gateway.base, pki, "tpp-demo")
    try:
        token = tpp.consent_token()
        initiation = domestic_initiation(amount="3.21")
        payments = []
        for _ in range(2):
            consent = tpp.payment_consent(initiation)
            assert consent.status_code == 201, consent.text
            consent_id = consent.json()["Data"]["ConsentId"]
            payments.append((consent_id, tpp.authorise_payment(consent_id, "alice"), secrets.token_hex(8)))
        before = _payments_made(ledger[1])
        victim = redis_cluster.master_of(names.client_tier("tpp-demo"))
        with Load(tpp, token) as load:
            time.sleep(SECONDS / 3)
            killed_at = time.monotonic()
            victim.kill()
            paid = [_pay_until_answered(tpp, pay_token, consent_id, initiation, key)
                    for consent_id, pay_token, key in payments]
        wait_until(redis_cluster.served, 20, "a replica promoted in the killed master's place")
        assert time.monotonic() - killed_at < 20
        # The operator brings the node back: it rejoins as the new master's replica, so audit appends (which WAIT for
        # one replica) are stored again, spooled ones included.
        victim.start()
        wait_until(redis_cluster.healthy, 30, "the cluster whole again (each master with a replica in sync)")
        assert load.statuses() <= {200, 503}, load.answers
        assert not load.errors, load.errors
        assert 503 in load.statuses()  # the calls that met the dead master failed closed
        after = tpp.get(ACCOUNTS, token)
        assert after.status_code == 200, after.text
        assert [p.status_code for p in paid] == [201, 201], [p.text for p in paid]
        # Each TPP retry of a payment (same idempotency key) after the failover paid nothing more.
        for (consent_id, pay_token, key), first in zip(payments, paid, strict=True):
            again = tpp.pay(pay_token, consent_id, initiation, key=key)
            assert again.status_code == 201 and again.json()["Data"] == first.json()["Data"]
        assert _payments_made(ledger[1]) == before + 2
        found = records_by_interaction(cluster_gateway, load.served(), seconds=20)
        assert all(found.values()), [i for i, records in found.items() if not records]
    finally:
        tpp.close()
        if victim.process is None:
            victim.start()
    done = cluster_gateway.cli("audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr


def _move_slot(cluster, key: str) -> None:
    """Move `key`'s slot, keys and all, to another master (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, NODE):
    clients see ASK while it moves and MOVED after."""
    source = cluster.master_of(key)
    password = cluster.password
    src = source.client(password)
    slot = src.cluster("keyslot", key)
    masters = [n for n in cluster.alive() if n is not source
               and cluster.info(n)["replication"]["role"] == "master"]
    target = masters[0]
    dst = target.client(password)
    try:
        src_id, dst_id = src.cluster("myid"), dst.cluster("myid")
        src_id = src_id.decode() if isinstance(src_id, bytes) else src_id
        dst_id = dst_id.decode() if isinstance(dst_id, bytes) else dst_id
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        for _ in range(1000):
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "AUTH", password, "KEYS", *keys)
            time.sleep(0.05)  # slowly: the load meets the slot half moved (ASK)
        for node in cluster.alive():
            client = node.client(password)
            try:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            except Exception:  # a replica answers too, or refuses: the masters' word is what counts
                pass
            finally:
                client.close()
    finally:
        src.close()
        dst.close()
    wait_until(lambda: cluster.master_of(key) is target, 10, "the slot served by its new master")


def test_a_tpps_slot_moved_during_load_is_followed(cluster_gateway, pki, redis_cluster):
    wait_until(redis_cluster.healthy, 30, "the cluster whole again (each master with a replica)")
    tpp = Tpp(cluster_gateway.base, pki, "tpp-demo")
    try:
        token = tpp.consent_token()
        with Load(tpp, token) as load:
            time.sleep(SECONDS / 4)
            _move_slot(redis_cluster, names.client_tier("tpp-demo"))
        assert load.statuses() <= {200, 503}, load.answers
        assert not load.errors, load.errors
        assert sum(1 for status, _ in load.answers if status == 200) >= len(load.answers) * 0.9
        assert tpp.get(ACCOUNTS, token).status_code == 200
    finally:
        tpp.close()
    done = cluster_gateway.cli("audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr


def test_sentinel_follows_the_promoted_replica_and_loses_no_acknowledged_record(tmp_path, pki, bank,
                                                                                 redis_sentinel):
    gw = bank_gateway(tmp_path, pki, bank, REDIS_URL=redis_sentinel.url)
    try:
        tpp = Tpp(gw.base, pki, "tpp-demo")
        try:
            token = tpp.consent_token()
            with Load(tpp, token) as load:
                time.sleep(SECONDS / 3)
                killed_at = time.monotonic()
                redis_sentinel.master.kill()
                wait_until(lambda: redis_sentinel.master_port() == redis_sentinel.replica.port, 20,
                           "the Sentinels promote the replica")
                wait_until(lambda: tpp.get(ACCOUNTS, token).status_code == 200, 20, "served by the new master")
                followed = time.monotonic() - killed_at
            assert followed < 20
            assert load.statuses() == {200, 503}, load.answers  # refused while no master answered, never a 500
            assert not load.errors, load.errors
            # The old master comes back and the Sentinels make it the new master's replica: audit appends, which
            # WAIT for one replica, are stored again (the ones spooled meanwhile too).
            redis_sentinel.master.start()
            wait_until(redis_sentinel.replicated, 30, "the old master back as the new master's replica")
            found = records_by_interaction(gw, load.served(), seconds=20)
            assert all(found.values()), [i for i, records in found.items() if not records]
        finally:
            tpp.close()
        done = gw.cli("audit", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        assert gw.stop() == 0
