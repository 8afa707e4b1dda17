"""The audit log's keys (gateway/audit/key_files.py): the pseudonym key that names customers, the Ed25519 key that signs
checkpoints; and the record's optional fields, left out when unset so that older records keep their hashes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.chain import GENESIS, seal, verify
from gateway.audit.key_files import (
    AuditKeyError,
    checkpoint_signed_by,
    key_id,
    load_pseudonym_key,
    load_public_key,
    load_signing_key,
    sign_checkpoint,
)
from gateway.audit.record import FIELDS, OPTIONAL_FIELDS, REQUIRED_FIELDS, AuditRecord
from gateway.crypto import pseudonym

ENTRY = {"chain": "host-123-abcd", "seq": 42, "hash": "ab" * 32, "ts": "2026-12-01T11:00:00Z"}
# The fields of every record written before subject, operator and unattended existed (git show HEAD~2).
OLD_FIELDS = ("ts", "interaction_id", "method", "route", "status", "decision", "reason", "latency_ms", "client_id",
              "consent_id", "cert_thumbprint")


def _private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _record(**optional) -> AuditRecord:
    return AuditRecord(ts="2026-12-01T11:00:00.000+00:00", interaction_id="1f3e", method="GET",
                       route="/open-banking/v3.1/aisp/accounts", status=200, decision="allow", reason=None,
                       latency_ms=3.5, client_id="tpp-demo", consent_id="aac-1", cert_thumbprint="t" * 43, **optional)


# ---------------------------------------------------------------- checkpoint signatures


def test_a_signed_checkpoint_verifies_with_the_public_half_of_its_key():
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, ENTRY)
    assert {k: signed[k] for k in ENTRY} == ENTRY
    assert signed["key"] == key_id(key.public_key()) and isinstance(signed["sig"], str) and "=" not in signed["sig"]
    assert checkpoint_signed_by(key.public_key(), signed)


def test_a_checkpoint_survives_a_round_trip_through_its_jsonl_line():
    key = Ed25519PrivateKey.generate()
    line = orjson.dumps(sign_checkpoint(key, ENTRY)) + b"\n"
    assert checkpoint_signed_by(key.public_key(), orjson.loads(line))


@pytest.mark.parametrize("field, value", [
    ("seq", 43), ("seq", 41), ("hash", "ac" + "ab" * 31), ("ts", "2026-12-01T11:00:01Z"), ("chain", "host-123-abce"),
])
def test_a_checkpoint_with_a_changed_signed_field_does_not_verify(field, value):
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, ENTRY)
    assert not checkpoint_signed_by(key.public_key(), {**signed, field: value})


def test_a_checkpoint_signed_by_another_key_does_not_verify():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert not checkpoint_signed_by(key.public_key(), sign_checkpoint(other, ENTRY))
    # Nor does it once it claims the right key id: the id is a label, the signature is the proof.
    forged = {**sign_checkpoint(other, ENTRY), "key": key_id(key.public_key())}
    assert not checkpoint_signed_by(key.public_key(), forged)


@pytest.mark.parametrize("signature", [None, "", "not base64 at all!", "QUJD", "A" * 86])
def test_a_checkpoint_with_a_missing_or_garbled_signature_does_not_verify(signature):
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, ENTRY)
    entry = {k: v for k, v in signed.items() if k != "sig"} if signature is None else {**signed, "sig": signature}
    assert not checkpoint_signed_by(key.public_key(), entry)


def test_a_signature_over_another_checkpoint_does_not_verify_this_one():
    key = Ed25519PrivateKey.generate()
    other = sign_checkpoint(key, {**ENTRY, "seq": 7})
    assert not checkpoint_signed_by(key.public_key(), {**sign_checkpoint(key, ENTRY), "sig": other["sig"]})


def test_fields_outside_the_signed_ones_are_not_signed():
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, ENTRY)
    assert checkpoint_signed_by(key.public_key(), {**signed, "key": "0" * 16, "note": "exported"})


HEADS = {"heads": {"host-123-abcd": "42:" + "ab" * 32, "operator-host-9-beef": "1:" + "cd" * 32}, "at": "17-0"}


@pytest.mark.parametrize("change", [
    {"heads": {"host-123-abcd": "42:" + "ab" * 32}},                           # a chain left out
    {"heads": {**HEADS["heads"], "host-666-f00d": "3:" + "ef" * 32}},          # a chain made up
    {"heads": {**HEADS["heads"], "operator-host-9-beef": "2:" + "cd" * 32}},   # a head moved
    {"at": "18-0"},
])
def test_the_heads_of_every_chain_and_their_stream_position_are_signed(change):
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, {**ENTRY, **HEADS})
    assert checkpoint_signed_by(key.public_key(), signed)
    assert not checkpoint_signed_by(key.public_key(), {**signed, **change})


@pytest.mark.parametrize("field", ["heads", "at"])
def test_neither_can_be_dropped_from_a_checkpoint_nor_added_to_a_legacy_one(field):
    key = Ed25519PrivateKey.generate()
    signed = sign_checkpoint(key, {**ENTRY, **HEADS})
    assert not checkpoint_signed_by(key.public_key(), {k: v for k, v in signed.items() if k != field})
    assert not checkpoint_signed_by(key.public_key(), {**sign_checkpoint(key, ENTRY), field: HEADS[field]})


def test_the_key_id_is_stable_per_key_and_differs_between_keys():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    assert key_id(key.public_key()) == key_id(key.public_key())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(key.public_key()) == hashlib.sha256(raw).hexdigest()[:16]
    assert key_id(other.public_key()) != key_id(key.public_key())
    assert sign_checkpoint(key, ENTRY)["key"] == sign_checkpoint(key, {**ENTRY, "seq": 1})["key"]


# ---------------------------------------------------------------- key files


def test_the_dev_pki_signing_key_and_its_public_half_sign_and_verify(pki: Path):
    private = load_signing_key(pki / "audit-signing.key")
    public = load_public_key(pki / "audit-signing.pub")
    assert key_id(public) == key_id(private.public_key())
    assert checkpoint_signed_by(public, sign_checkpoint(private, ENTRY))


def test_load_public_key_accepts_a_public_pem_and_a_private_pem(tmp_path: Path):
    key = Ed25519PrivateKey.generate()
    (tmp_path / "audit-signing.pub").write_bytes(_public_pem(key))
    (tmp_path / "audit-signing.key").write_bytes(_private_pem(key))
    from_public = load_public_key(tmp_path / "audit-signing.pub")
    from_private = load_public_key(tmp_path / "audit-signing.key")
    assert key_id(from_public) == key_id(from_private) == key_id(key.public_key())
    assert checkpoint_signed_by(from_private, sign_checkpoint(key, ENTRY))


def test_load_public_key_refuses_a_key_that_is_not_ed25519_naming_the_file(tmp_path: Path):
    path = tmp_path / "ec.pub"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(_public_pem(ec_key))
    with pytest.raises(AuditKeyError, match="not an Ed25519 public key") as refused:
        load_public_key(path)
    assert str(path) in str(refused.value)


def test_load_public_key_refuses_a_file_that_is_no_pem_naming_the_file(tmp_path: Path):
    path = tmp_path / "garbage.pub"
    path.write_text("hello\n")
    with pytest.raises(AuditKeyError) as refused:
        load_public_key(path)
    assert str(path) in str(refused.value)


def test_load_signing_key_refuses_a_private_key_that_is_not_ed25519(tmp_path: Path):
    path = tmp_path / "audit-signing.key"
    path.write_bytes(_private_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(AuditKeyError, match="must be Ed25519") as refused:
        load_signing_key(path)
    assert str(path) in str(refused.value)


@pytest.mark.parametrize("loader", [load_pseudonym_key, load_signing_key, load_public_key])
def test_a_missing_key_file_is_refused_naming_it_and_the_command_that_writes_one(tmp_path: Path, loader):
    path = tmp_path / "absent" / "audit.key"
    with pytest.raises(AuditKeyError) as refused:
        loader(path)
    assert str(path) in str(refused.value) and "obgw certs init" in str(refused.value)


def test_the_dev_pki_pseudonym_key_is_32_bytes(pki: Path):
    assert len(load_pseudonym_key(pki / "audit.key")) == 32


def test_a_pseudonym_key_written_as_hex_with_surrounding_whitespace_loads(tmp_path: Path):
    path = tmp_path / "audit.key"
    secret = bytes(range(32))
    path.write_text(f"  {secret.hex()}\n\n")
    assert load_pseudonym_key(path) == secret


@pytest.mark.parametrize("content", [
    "00" * 31,                    # 31 bytes: too short
    "",                           # empty
    "zz" * 32,                    # not hex
    "0" * 63,                     # odd number of hex digits
    "é" * 64,                     # not ASCII
])
def test_a_short_or_non_hex_pseudonym_key_is_refused_naming_the_file(tmp_path: Path, content: str):
    path = tmp_path / "audit.key"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AuditKeyError, match="at least 32 bytes written as hex") as refused:
        load_pseudonym_key(path)
    assert str(path) in str(refused.value)


def test_a_raw_32_byte_pseudonym_key_is_refused_not_taken_as_text(tmp_path: Path):
    path = tmp_path / "audit.key"
    path.write_bytes(bytes(range(200, 232)))
    with pytest.raises(AuditKeyError, match=str(path).replace(".", r"\.")):
        load_pseudonym_key(path)


# ---------------------------------------------------------------- pseudonyms


def test_a_customer_pseudonym_is_stable_per_key_and_differs_per_key():
    key, other = bytes(range(32)), bytes(range(1, 33))
    assert pseudonym(key, "alice") == pseudonym(key, "alice")
    assert pseudonym(key, "alice") != pseudonym(other, "alice")
    assert pseudonym(key, "alice") != pseudonym(key, "bob")


def test_a_customer_pseudonym_does_not_contain_the_customer_id():
    key = bytes(range(32))
    for customer in ("alice", "bob", "customer-000123"):
        assert customer not in pseudonym(key, customer)


# ---------------------------------------------------------------- optional record fields


def test_the_optional_fields_are_subject_operator_unattended_and_delivered():
    assert OPTIONAL_FIELDS == ("subject", "operator", "unattended", "delivered")
    assert REQUIRED_FIELDS == OLD_FIELDS
    assert set(FIELDS) == set(OLD_FIELDS) | set(OPTIONAL_FIELDS)


def test_a_record_without_optional_fields_has_exactly_the_old_fields():
    assert tuple(_record().fields()) == OLD_FIELDS


def test_a_record_without_optional_fields_hashes_as_it_did_before_they_existed():
    record = _record()
    old_form = {name: getattr(record, name) for name in OLD_FIELDS} | {"chain": "c", "seq": 1, "prev": GENESIS}
    expected = hashlib.sha256(orjson.dumps(old_form, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert seal(record, "c", 1, GENESIS)["hash"] == expected


def test_a_record_with_a_subject_includes_it_and_only_the_optional_fields_set():
    fields = _record(subject="cust-abc").fields()
    assert fields["subject"] == "cust-abc"
    assert set(fields) == set(OLD_FIELDS) | {"subject"}


def test_a_record_with_every_optional_field_includes_each_of_them():
    fields = _record(subject="cust-abc", operator="ops@host", unattended=True, delivered=("f1", "f2")).fields()
    assert (fields["subject"], fields["operator"], fields["unattended"], fields["delivered"]) == (
        "cust-abc", "ops@host", True, ("f1", "f2"))
    assert set(fields) == set(FIELDS)


def test_the_subject_is_part_of_the_hash():
    assert seal(_record(subject="cust-a"), "c", 1, GENESIS)["hash"] != seal(_record(subject="cust-b"), "c", 1,
                                                                            GENESIS)["hash"]
    assert seal(_record(), "c", 1, GENESIS)["hash"] != seal(_record(subject="cust-a"), "c", 1, GENESIS)["hash"]


def test_a_chain_of_old_style_and_new_style_records_verifies():
    first = seal(_record(), "c", 1, GENESIS)
    second = seal(_record(subject="cust-a", unattended=True), "c", 2, str(first["hash"]))
    third = seal(_record(operator="ops@host", subject="cust-a"), "c", 3, str(second["hash"]))
    result = verify([("1", first), ("2", second), ("3", third)], heads={"c": f"3:{third['hash']}"})
    assert result.breach is None and result.records == 3


def test_a_subject_removed_from_a_stored_record_breaks_the_chain():
    record = seal(_record(subject="cust-a"), "c", 1, GENESIS)
    stripped = {k: v for k, v in record.items() if k != "subject"}
    result = verify([("1", stripped)], heads={"c": f"1:{record['hash']}"})
    assert result.breach is not None and "does not match its hash" in result.breach.message
