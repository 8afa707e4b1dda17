"""`obgw certs init`: writes the development PKI once, then reports that it exists."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import gateway.cli
from gateway.cli import CliError, certs
from gateway.pki import AUDIT_KEY_FILES, CUSTOMERS_FILE, KEY_ENCRYPTION_KEY_FILE

CONTRACT_FILES = {"ca.pem", "ca.key", "server.pem", "server.key", "directory.json", "directory-jwks.json"} | {
    f"{name}{ext}" for name in ("tpp-demo", "tpp-other") for ext in (".pem", ".key", ".json")
}
# and the audit log's pseudonym and checkpoint-signing keys, the key that encrypts the token-signing keys, and the
# demo customers' authenticator secrets
WRITTEN = CONTRACT_FILES | set(AUDIT_KEY_FILES) | {KEY_ENCRYPTION_KEY_FILE, CUSTOMERS_FILE}


def run(argv: list[str]) -> int:
    """Parse with only the `certs` noun registered, so these tests do not depend on the other commands."""
    parser = argparse.ArgumentParser(prog="obgw")
    certs.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_init_writes_then_reports_existing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dev"
    assert run(["certs", "init", "--dir", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(f"wrote {out / name}" for name in WRITTEN)
    assert {p.name for p in out.iterdir()} == WRITTEN

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run(["certs", "init", "--dir", str(out)]) == 0
    assert capsys.readouterr().out == f"certs in {out} already exist (use --force to replace)\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_force_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["certs", "init", "--dir", str(tmp_path)])
    ca = (tmp_path / "ca.pem").read_bytes()
    capsys.readouterr()
    assert run(["certs", "init", "--dir", str(tmp_path), "--force"]) == 0
    # Every certificate again, but not the audit keys: a new one would rename every customer in the log.
    assert len(capsys.readouterr().out.splitlines()) == len(CONTRACT_FILES)
    assert (tmp_path / "ca.pem").read_bytes() != ca


def test_tpp_and_redirect_uri_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["certs", "init", "--dir", str(tmp_path), "--tpp", "acme", "--tpp", "globex",
            "--redirect-uri", "https://acme.example/cb"]
    assert run(argv) == 0
    assert {p.name for p in tmp_path.glob("*.json")} == {"acme.json", "globex.json", "directory.json",
                                                        "directory-jwks.json", CUSTOMERS_FILE}
    assert '"redirect_uri": "https://acme.example/cb"' in (tmp_path / "acme.json").read_text()
    # A later run with a new TPP adds only that TPP, signed by the same CA.
    capsys.readouterr()
    assert run(["certs", "init", "--dir", str(tmp_path), "--tpp", "initech"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {tmp_path / name}" for name in ("initech.pem", "initech.key", "initech.json")
    ]


def test_default_dir_is_certs_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["certs", "init"]) == 0
    assert {p.name for p in (tmp_path / "certs" / "dev").iterdir()} == WRITTEN


def test_bad_tpp_name_is_a_cli_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="bad TPP name 'server'"):
        run(["certs", "init", "--dir", str(tmp_path / "dev"), "--tpp", "server"])
    assert not (tmp_path / "dev").exists()


def test_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run(["certs"])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


def test_exit_codes_through_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The real entry point, with only `certs` registered: 0 on success, 2 and `obgw: ...` on bad input."""
    monkeypatch.setattr(gateway.cli, "COMMANDS", ("certs",))
    assert gateway.cli.main(["certs", "init", "--dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert gateway.cli.main(["certs", "init", "--dir", str(tmp_path), "--redirect-uri", "/cb"]) == 2
    assert capsys.readouterr().err.startswith("obgw: bad redirect URI '/cb'")
