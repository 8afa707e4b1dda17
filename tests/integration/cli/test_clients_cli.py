"""`obgw clients` and `obgw keys` against a real Redis: what an operator types, and what they see."""
from __future__ import annotations

import json

import pytest

from gateway.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_from_the_demo_file_registers_both_methods_and_the_certificate(capsys, redis_url, pki):
    code, out, _ = run(capsys, "clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"),
                       "--redis-url", redis_url)
    assert code == 0 and out.startswith("registered tpp-demo: tls_client_auth, private_key_jwt")
    code, out, _ = run(capsys, "clients", "show", "tpp-demo", "--redis-url", redis_url)
    document, _, usage = out.partition("\nrate-limit tier: ")
    shown = json.loads(document)
    assert usage.startswith("standard (the policy's default)") and "100 of 100 left (20/s, burst 100)" in usage
    assert shown["redirect_uris"] == ["https://tpp.example.com/callback"]
    assert shown["roles"] == ["AISP", "PISP", "CBPII"]
    assert shown["subject_dn"] == "O=obgw demo TPP,CN=tpp-demo" and [len(t) for t in shown["cert_thumbprints"]] == [43]
    assert all("d" not in key for key in shown["jwks"]["keys"])  # only the public half is registered
    # A second add is refused unless --replace: an id is never silently taken over.
    code, _, err = run(capsys, "clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"),
                       "--redis-url", redis_url)
    assert code == 2 and "exists" in err


def test_disable_and_list_show_the_status(capsys, redis_url, pki):
    run(capsys, "clients", "add", "tpp-other", "--cert", str(pki / "tpp-other.pem"),
        "--redirect-uri", "https://other.example/cb", "--redis-url", redis_url)
    assert run(capsys, "clients", "disable", "tpp-other", "--redis-url", redis_url)[0] == 0
    code, out, _ = run(capsys, "clients", "list", "--redis-url", redis_url)
    assert out.split("\t")[:4] == ["tpp-other", "disabled", "AISP,PISP,CBPII", "tls_client_auth"]


@pytest.mark.parametrize("content, message", [
    ("{not json", ":1:2: not JSON"),
    ("[]", ":1:1: expected a JSON object"),
    ('{"cert": "x"}', "needs cert, redirect_uri and private_jwk"),
])
def test_a_bad_registration_file_is_named_with_its_line(capsys, redis_url, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = run(capsys, "clients", "add", "x", "--from-json", str(bad), "--redis-url", redis_url)
    assert code == 2 and err.startswith(f"obgw: {bad}") and message in err


def test_an_http_redirect_uri_or_a_jwt_method_without_keys_is_refused(capsys, redis_url, pki):
    code, _, err = run(capsys, "clients", "add", "x", "--cert", str(pki / "tpp-demo.pem"),
                       "--redirect-uri", "http://insecure.example/cb", "--redis-url", redis_url)
    assert code == 2 and "https://" in err
    code, _, err = run(capsys, "clients", "add", "x", "--cert", str(pki / "tpp-demo.pem"), "--redirect-uri",
                       "https://a.example/cb", "--auth-method", "private_key_jwt", "--redis-url", redis_url)
    assert code == 2 and "needs --jwks" in err


def test_rotate_adds_a_signing_key_and_keeps_the_old_one_listed(capsys, redis_url, pki):
    where = ("--redis-url", redis_url, "--client-ca", str(pki / "ca.pem"))  # its signing.kek seals the keys
    assert run(capsys, "keys", "rotate", *where)[0] == 0
    code, out, _ = run(capsys, "keys", "rotate", *where)
    assert code == 0 and out.startswith("signing with ")
    lines = run(capsys, "keys", "list", *where)[1].splitlines()
    assert len(lines) == 2 and "signing" in lines[0] and "retired, verifies until" in lines[1]
