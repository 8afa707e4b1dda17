"""Operator commands that change a client, a consent or a signing key are in the audit log, with the operating-system
user, before they change anything; a command whose record cannot be stored changes nothing."""
from __future__ import annotations

import getpass
import json
import socket

import pytest

from gateway.cli import main
from gateway.store import names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _operator_records(capsys, redis_url: str) -> list[dict]:
    code, out, err = run(capsys, "audit", "search", "--json", "--redis-url", redis_url)
    assert code == 0, err
    return [r for r in map(json.loads, out.splitlines()) if r["method"] == "CLI"]


def test_every_changing_command_is_recorded_with_the_operator(capsys, redis_url, redis_client, pki):
    where = ("--redis-url", redis_url)
    commands = [
        ("clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json")),
        ("clients", "set-tier", "tpp-demo", "unlimited"),
        ("clients", "set-plan", "tpp-demo", "trial"),
        ("clients", "disable", "tpp-demo"),
        ("clients", "enable", "tpp-demo"),
        ("keys", "rotate"),
    ]
    for command in commands:
        code, _, err = run(capsys, *command, *where)
        assert code == 0, (command, err)
    [kid] = [k.decode() for k in redis_client.hkeys(names.SIGNING_KEYS)]
    assert run(capsys, "keys", "revoke", *where, "--", kid)[0] == 0
    # Read-only commands leave nothing.
    assert run(capsys, "clients", "list", *where)[0] == 0 and run(capsys, "keys", "list", *where)[0] == 0

    records = _operator_records(capsys, redis_url)
    assert [(r["route"], r["reason"], r.get("client_id")) for r in records] == [
        ("obgw clients add", "operator.clients_add", "tpp-demo"),
        ("obgw clients set-tier", "operator.clients_set_tier", "tpp-demo"),
        ("obgw clients set-plan", "operator.clients_set_plan", "tpp-demo"),
        ("obgw clients disable", "operator.clients_disable", "tpp-demo"),
        ("obgw clients enable", "operator.clients_enable", "tpp-demo"),
        ("obgw keys rotate", "operator.keys_rotate", None),
        ("obgw keys revoke", "operator.keys_revoke", None),
    ]
    assert {r["operator"] for r in records} == {f"{getpass.getuser()}@{socket.gethostname()}"}
    # Findable by the TPP it acted on, and part of the verifiable log.
    code, out, _ = run(capsys, "audit", "search", "--json", "--client", "tpp-demo", "--redis-url", redis_url)
    assert sum(json.loads(line)["method"] == "CLI" for line in out.splitlines()) == 5
    code, out, err = run(capsys, "audit", "verify", "--redis-url", redis_url)
    assert code == 0, out + err


def test_a_refused_command_leaves_no_record(capsys, redis_url):
    code, _, err = run(capsys, "clients", "disable", "no-such-tpp", "--redis-url", redis_url)
    assert code == 2 and "no client no-such-tpp" in err
    code, _, err = run(capsys, "keys", "revoke", "no-such-kid", "--redis-url", redis_url)
    assert code == 2
    assert _operator_records(capsys, redis_url) == []


@pytest.mark.parametrize("command", [("clients", "disable", "tpp-demo"),
                                     ("clients", "set-tier", "tpp-demo", "unlimited"),
                                     ("clients", "set-plan", "tpp-demo", "trial")])
def test_a_command_that_cannot_be_recorded_changes_nothing(capsys, redis_url, redis_client, pki, tmp_path, command):
    assert run(capsys, "clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"),
               "--redis-url", redis_url)[0] == 0
    before = {k: redis_client.dump(k) for k in redis_client.keys("obgw:*") if b"audit" not in k}
    code, _, err = run(capsys, *command, "--redis-url", redis_url,
                       "--audit-signing-key", str(tmp_path / "missing.key"))
    assert code == 2 and "cannot record" in err and "nothing was done" in err
    assert {k: redis_client.dump(k) for k in redis_client.keys("obgw:*") if b"audit" not in k} == before
