"""`obgw keys` against a real Redis: revoking a key, sealing keys an older version stored in clear, a wrong
key-encryption key, and the commands' refusal to invent a Redis when none is named or running."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.cli import main
from gateway.crypto import jwk_thumbprint
from gateway.store import names
from gateway.store.clients import ClientStore

SIGNING_KEYS = names.SIGNING_KEYS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def where(redis_url, pki) -> tuple[str, ...]:
    return "--redis-url", redis_url, "--client-ca", str(pki / "ca.pem")


def _kids(capsys, where) -> list[str]:
    return [line.split("\t")[0] for line in run(capsys, "keys", "list", *where)[1].splitlines()]


def test_revoking_the_signing_key_deletes_it_marks_every_client_and_a_new_key_signs(capsys, redis_client, where):
    redis_client.sadd(names.CLIENTS, "tpp-demo", "tpp-other")
    run(capsys, "keys", "rotate", *where)
    [kid] = _kids(capsys, where)

    code, out, err = run(capsys, "keys", "revoke", *where, "--", kid)

    assert code == 0, err
    [new_kid] = _kids(capsys, where)
    assert out == (f"revoked {kid}: deleted, and its tokens refused from their next call on every worker "
                   f"(2 registered clients marked); signing with {new_kid} from now\n")
    for client_id in ("tpp-demo", "tpp-other"):  # the markers the admission scripts read, under each TPP's tag
        assert redis_client.exists(names.revoked_key(client_id, kid))
        assert 0 < redis_client.ttl(names.revoked_key(client_id, kid)) <= 600 + 60 + 60 + 1


def test_a_client_registered_after_a_revocation_is_marked_too(capsys, redis_client, where):
    run(capsys, "keys", "rotate", *where)
    [kid] = _kids(capsys, where)
    assert run(capsys, "keys", "revoke", *where, "--", kid)[0] == 0
    assert ClientStore(redis_client).add({"client_id": "tpp-late", "client_name": "late"})
    assert redis_client.exists(names.revoked_key("tpp-late", kid))
    assert 0 < redis_client.ttl(names.revoked_key("tpp-late", kid)) <= 600 + 60 + 60 + 1


def test_revoking_an_unknown_kid_is_refused_and_changes_nothing(capsys, redis_client, where):
    run(capsys, "keys", "rotate", *where)
    before = redis_client.hgetall(SIGNING_KEYS)
    code, out, err = run(capsys, "keys", "revoke", "no-such-kid", *where)
    assert (code, out) == (2, "")
    assert err == "obgw: no signing key no-such-kid (`obgw keys list` shows the keys)\n"
    assert redis_client.hgetall(SIGNING_KEYS) == before


def test_a_key_an_older_version_stored_in_clear_is_sealed_by_the_first_command(capsys, redis_client, where, pki):
    private = ec.generate_private_key(ec.SECP256R1())
    kid = jwk_thumbprint(ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    redis_client.hset(SIGNING_KEYS, kid, json.dumps({"kid": kid, "alg": "ES256", "private_pem": pem,
                                                     "created": 1_700_000_000.0, "retired_at": None}))
    assert _kids(capsys, where) == [kid]
    stored = redis_client.hget(SIGNING_KEYS, kid).decode()
    assert "PRIVATE KEY" not in stored and "private_pem" not in stored
    scalar = private.private_numbers().private_value.to_bytes(32, "big")
    assert ECAlgorithm.to_jwk(private, as_dict=True)["d"] not in stored and scalar.hex() not in stored


def test_a_wrong_key_encryption_key_is_an_error_naming_its_file(capsys, where, tmp_path):
    run(capsys, "keys", "rotate", *where)
    wrong = tmp_path / "wrong.kek"
    wrong.write_text(bytes(32).hex())
    code, out, err = run(capsys, "keys", "list", *where, "--key-encryption-key", str(wrong))
    assert (code, out) == (2, "")
    assert err.startswith(f"obgw: the key-encryption key {wrong} does not open signing key ")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("argv", [("keys", "list"), ("clients", "list"), ("audit", "verify")])
def test_a_command_without_redis_url_and_no_gateway_running_says_so_and_starts_no_redis(capsys, tmp_path, argv):
    var = tmp_path / "var"
    code, out, err = run(capsys, *argv, "--var-dir", str(var))
    assert (code, out) == (2, "")
    assert err == (f"obgw: no Redis: set REDIS_URL, or run this where `obgw demo` or `obgw serve --embedded-redis` "
                   f"is running with the state directory {var}\n")
    assert not var.exists()  # no private Redis was started on it
