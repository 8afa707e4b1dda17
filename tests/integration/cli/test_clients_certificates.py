"""`obgw clients add-cert` (a certificate renewal) and how disable/enable decide which software may register through
DCR, against a real Redis."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from gateway import pki as pkimod
from gateway.cli import main
from gateway.store.clients import ClientStore


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def registered(capsys, redis_url, pki):
    assert run(capsys, "clients", "add", "tpp-demo", "--from-json", str(pki / "tpp-demo.json"),
               "--redis-url", redis_url)[0] == 0
    return lambda *argv: run(capsys, *argv, "--redis-url", redis_url)


def _shown(cli) -> dict:
    return json.loads(cli("clients", "show", "tpp-demo")[1].partition("\nrate-limit tier: ")[0])


def test_add_cert_registers_a_second_certificate_of_the_same_software(registered, pki, tmp_path):
    renewed = pkimod.issue_client_cert(pkimod.load_ca(pki), "tpp-demo")
    renewed.write(tmp_path / "renewed.pem", tmp_path / "renewed.key")
    before = _shown(registered)["cert_thumbprints"]
    code, out, _ = registered("clients", "add-cert", "tpp-demo", str(tmp_path / "renewed.pem"),
                              "--client-ca", str(pki / "ca.pem"))
    assert code == 0 and "2 in all" in out
    after = _shown(registered)
    assert after["cert_thumbprints"] == [*before, pkimod.thumbprint_sha256(renewed.cert)]
    assert after["status"] == "active"
    # Added twice: nothing changes.
    assert registered("clients", "add-cert", "tpp-demo", str(tmp_path / "renewed.pem"),
                      "--client-ca", str(pki / "ca.pem"))[0] == 0
    assert _shown(registered)["cert_thumbprints"] == after["cert_thumbprints"]


@pytest.mark.parametrize("case, message", [
    ("another CA", "not a client certificate of the CA"),
    ("expired", "not a client certificate of the CA"),
    ("another software", "not the client's software id 'tpp-demo'"),
    ("not PEM", "not a PEM certificate"),
])
def test_add_cert_refuses_a_certificate_the_client_could_not_be(registered, pki, tmp_path, case, message):
    pem = tmp_path / "new.pem"
    if case == "another CA":
        pkimod.issue_client_cert(pkimod.make_ca("someone else's CA"), "tpp-demo").write(pem, tmp_path / "new.key")
    elif case == "expired":
        past = datetime.now(timezone.utc) - timedelta(days=1)
        pkimod.issue_client_cert(pkimod.load_ca(pki), "tpp-demo", not_after=past).write(pem, tmp_path / "new.key")
    elif case == "another software":
        pkimod.issue_client_cert(pkimod.load_ca(pki), "tpp-other").write(pem, tmp_path / "new.key")
    else:
        pem.write_text("not a certificate")
    before = _shown(registered)
    code, _, err = registered("clients", "add-cert", "tpp-demo", str(pem), "--client-ca", str(pki / "ca.pem"))
    assert code == 2 and message in err, err
    assert _shown(registered) == before


def test_disable_refuses_the_software_to_registration_and_enable_lifts_it(registered, redis_client):
    store = ClientStore(redis_client)
    assert registered("clients", "disable", "tpp-demo")[0] == 0
    assert store.software_refused("tpp-demo")  # the certificate's CN: this client came from `clients add`
    assert registered("clients", "enable", "tpp-demo")[0] == 0
    assert not store.software_refused("tpp-demo")


def test_a_deleted_clients_software_stays_refused_until_enable_names_the_client(registered, redis_client):
    store = ClientStore(redis_client)
    assert store.delete("tpp-demo", "tpp-demo")  # the software: its certificate CN (oauth.models.Client.software)
    assert store.software_refused("tpp-demo")
    code, out, _ = registered("clients", "enable", "tpp-demo")
    assert code == 0 and "deleted" in out and "tpp-demo" in out
    assert not store.software_refused("tpp-demo")
    code, _, err = registered("clients", "enable", "tpp-demo")
    assert code == 2 and "no client tpp-demo" in err
