"""Redis Cluster: every script's keys hash to one slot, at every call site in gateway/store (issue 19, item 1).

A script whose keys span slots is refused by a Cluster (CROSSSLOT; redis-py refuses it before sending). The call
sites are read from the source: each `self._script(keys=[...])` (or positional list) whose items are `names.*(...)`
calls, directly or through a module-level helper; each argument stands for itself (its source text), so two keys
built from the same expression share a value and keys from different ones do not. A key is in one slot with another
only through a shared hash tag, which is what the test proves.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from redis.crc import key_slot

from gateway.settings import Settings
from gateway.store import names
from gateway.store.redis import HaAddress, is_ha

STORE = Path(names.__file__).parent


def _slot(key: str) -> int:
    return key_slot(key.encode())


def _key_calls(node: ast.AST, module: ast.Module, bindings: dict[str, str]) -> list[str]:
    """The keys `node` (a list item) builds, each names function called with its arguments' source text."""
    if isinstance(node, ast.Starred):
        return _key_calls(node.value, module, bindings)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "names":
        return [getattr(names, node.attr)]  # a constant key (names.AUDIT_STREAM)
    if not isinstance(node, ast.Call):
        return []
    func = node.func
    function = func.attr if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
        and func.value.id == "names" else func.id if isinstance(func, ast.Name) else None
    if function is None:
        return []
    args = [bindings.get(ast.unparse(arg), ast.unparse(arg)) for arg in node.args]
    if hasattr(names, function) and callable(getattr(names, function)):
        return [getattr(names, function)(*args)]
    helper = next((d for d in module.body if isinstance(d, ast.FunctionDef) and d.name == function), None)
    if helper is None:
        return []
    inner = dict(zip([a.arg for a in helper.args.args], args, strict=False))
    return [key for sub in ast.walk(helper) if isinstance(sub, ast.List) for item in sub.elts
            for key in _key_calls(item, module, inner)]


def _script_call_sites() -> list[tuple[str, int, list[str]]]:
    sites = []
    for path in sorted(STORE.glob("*.py")):
        module = ast.parse(path.read_text())
        for node in ast.walk(module):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self"
                    and node.func.attr.startswith("_")):
                continue
            listed = next((k.value for k in node.keywords if k.arg == "keys"), None) or (
                node.args[0] if node.args else None)
            if isinstance(listed, ast.List):
                keys = [key for item in listed.elts for key in _key_calls(item, module, {})]
            elif isinstance(listed, ast.Call) and isinstance(listed.func, ast.Name):  # keys=_keys(consent_id)
                keys = _key_calls(listed, module, {})
            else:
                continue
            if keys:
                sites.append((path.name, node.lineno, keys))
    return sites


SITES = _script_call_sites()


def test_the_scan_finds_the_script_call_sites():
    files = {name for name, _, _ in SITES}
    assert {"admission.py", "oauth.py", "events.py", "vrp.py", "idempotency.py", "audit.py"} <= files
    assert any(len(keys) >= 8 for _, _, keys in SITES)  # Admit's one round trip


@pytest.mark.parametrize(("where", "line", "keys"), SITES, ids=[f"{n}:{line}" for n, line, _ in SITES])
def test_every_scripts_keys_hash_to_one_slot(where, line, keys):
    assert len({_slot(key) for key in keys}) == 1, f"{where}:{line} spans slots: {keys}"


def test_a_tpps_keys_share_its_slot_and_tpps_spread_over_slots():
    # Every key named by a client id carries its hash tag, but the registry's document (read alone, by id).
    per_client = [f for name, f in vars(names).items() if inspect.isfunction(f) and not name.startswith("_")
                  and list(inspect.signature(f).parameters)[:1] == ["client_id"] and f is not names.client]
    assert len(per_client) >= 10
    for client_id in ("tpp-demo", "tpp-other"):
        slots = {_slot(f(*([client_id] + ["x"] * (len(inspect.signature(f).parameters) - 1)))) for f in per_client}
        assert slots == {_slot("{" + client_id + "}")}, client_id
    assert _slot(names.client_tier("tpp-demo")) != _slot(names.client_tier("tpp-other"))
    # A code and its redemption marker are taken together (take_owned.lua).
    assert _slot(names.authorization_code("ab12")) == _slot(names.used_code("ab12"))
    assert _slot(names.vrp_usage("c-1")) == _slot(names.vrp_claims("c-1"))
    # The audit append names each consent's recent-access list with its shard's stream and heads; shards differ.
    assert _slot(names.consent_accesses("c-1")) == _slot(names.AUDIT_STREAM) == _slot(names.AUDIT_HEADS)
    tags = [names.audit_shard_tag(index, 3) for index in range(3)]
    for tag in tags:
        assert _slot(names.consent_accesses("c-1", tag)) == _slot(names.audit_stream(tag)) == \
            _slot(names.audit_heads(tag))
    assert len({_slot(names.audit_stream(tag)) for tag in tags}) == 3


def test_ha_addresses():
    cluster = HaAddress("redis+cluster://:p%40ss@10.0.0.1:7000,10.0.0.2:7001")
    assert cluster.cluster and cluster.password == "p@ss" and cluster.wait == 1
    assert cluster.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    sentinel = HaAddress("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/obgw?wait=0")
    assert not sentinel.cluster and sentinel.master == "obgw" and sentinel.password is None and sentinel.wait == 0
    with pytest.raises(ValueError):
        HaAddress("redis+sentinel://127.0.0.1:26379")  # no master name
    with pytest.raises(ValueError):
        HaAddress("redis+cluster://")
    assert is_ha("redis+cluster://h:1") and not is_ha("redis://127.0.0.1:6379/0")


def test_redis_sentinels_make_a_sentinel_url_and_redis_url_wins():
    sentinels = {"REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2:26379", "REDIS_SENTINEL_MASTER": "obgw"}
    assert Settings.load(environ=sentinels).redis == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/obgw"
    assert Settings.load(environ={**sentinels, "REDIS_URL": "redis://127.0.0.1:6379/0"}).redis == \
        "redis://127.0.0.1:6379/0"
    assert Settings.load(environ={}).redis_url is None
    # The master's password goes before the first Sentinel, as in the URL.
    with_password = Settings.load(environ={**sentinels, "REDIS_SENTINELS": ":s3cret@10.0.0.1:26379"}).redis
    assert HaAddress(with_password).password == "s3cret" and HaAddress(with_password).master == "obgw"
