"""The replay store of client-assertion jtis (store/oauth.py `claim_jti`, claim_jti.lua) against a real Redis: one
fixed key per client, jtis by their hash, forgotten on time, and at most `limit` held at once."""
from __future__ import annotations

import hashlib
import time

from gateway.store.oauth import AuthorizationStore

JTIS = "obgw:{tpp-demo}:jtis"


def test_a_jti_is_claimed_once_and_stored_by_its_hash_whatever_its_length(redis_client):
    store = AuthorizationStore(redis_client)
    long_jti = "j" * 10_000
    assert store.claim_jti("tpp-demo", long_jti, 60, 10) == "claimed"
    assert store.claim_jti("tpp-demo", long_jti, 60, 10) == "used"
    assert store.claim_jti("tpp-other", long_jti, 60, 10) == "claimed"  # per client
    assert redis_client.keys("*tpp-demo*") == [JTIS.encode()]
    assert redis_client.zrange(JTIS, 0, -1) == [hashlib.sha256(long_jti.encode()).hexdigest().encode()]
    assert 55 <= redis_client.ttl(JTIS) <= 60
    assert store.claim_jti("tpp-demo", "\ud800 a lone surrogate", 60, 10) == "claimed"  # JSON allows one


def test_a_client_holds_at_most_limit_jtis_and_a_forgotten_one_makes_room(redis_client):
    store = AuthorizationStore(redis_client)
    assert [store.claim_jti("tpp-demo", f"a-{n}", 1, 3) for n in range(3)] == ["claimed"] * 3
    assert store.claim_jti("tpp-demo", "b", 60, 3) == "full"
    assert store.claim_jti("tpp-demo", "a-0", 60, 3) == "used"   # a replay is still told as such
    time.sleep(1.1)
    assert store.claim_jti("tpp-demo", "b", 60, 3) == "claimed"  # the three before were forgotten
    assert redis_client.zcard(JTIS) == 1 and redis_client.ttl(JTIS) > 50
