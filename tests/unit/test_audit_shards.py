"""Audit shards (issue 19 item 1): each shard's keys share one Cluster slot, shards of N sit on N different masters
of a cluster made as `redis-cli --cluster create` makes one, chains spread over the shards, shard 0 keeps the names
every version before shards wrote, and a spooled batch keeps its shard."""
from __future__ import annotations

import secrets

import pytest
from redis.crc import key_slot

from gateway.audit.chain import shard_of
from gateway.audit.spool import Batch
from gateway.store import names


def _slot(key: str) -> int:
    return key_slot(key.encode())


def _masters(count: int) -> list[range]:
    """The slot ranges `redis-cli --cluster create` gives `count` masters (redis-cli.c, clusterManagerCommandCreate)."""
    per, cursor, first, ranges = names.SLOTS / count, 0.0, 0, []
    for i in range(count):
        last = names.SLOTS - 1 if i == count - 1 else min(names.SLOTS - 1, round(cursor + per - 1))
        ranges.append(range(first, last + 1))
        cursor, first = cursor + per, last + 1
    return ranges


def _keys(tag: str) -> list[str]:
    return [names.audit_stream(tag), names.audit_heads(tag), names.audit_archive(tag),
            names.audit_archive_lease(tag), names.consent_accesses("c-1", tag)]


def test_shard_0_keeps_the_names_of_the_single_stream_so_existing_logs_are_read_as_they_are():
    assert names.audit_shard_tag(0, 4) == names.AUDIT_TAG
    assert (names.AUDIT_STREAM, names.AUDIT_HEADS, names.AUDIT_ARCHIVE, names.AUDIT_ARCHIVE_LEASE) == (
        "obgw:{audit}:records", "obgw:{audit}:heads", "obgw:{audit}:archive", "obgw:{audit}:archive-lease")
    assert names.consent_accesses("c-1") == "obgw:{audit}:consent-accesses:c-1"
    assert shard_of("any-chain", 1) == names.AUDIT_TAG


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6])
def test_each_shard_is_one_slot_and_n_shards_land_on_n_different_masters(count):
    tags = [names.audit_shard_tag(index, count) for index in range(count)]
    for tag in tags:
        assert {_slot(key) for key in _keys(tag)} == {_slot(names.audit_stream(tag))}
    owners = [next(i for i, slots in enumerate(_masters(count)) if _slot(names.audit_stream(tag)) in slots)
              for tag in tags]
    assert sorted(owners) == list(range(count))
    assert _slot(names.AUDIT_SHARDS) == _slot(names.AUDIT_STREAM)  # the shard list is read with shard 0


def test_chains_spread_over_every_shard():
    counts: dict[str, int] = {}
    for _ in range(600):
        tag = shard_of(f"host-{secrets.token_hex(4)}", 3)
        counts[tag] = counts.get(tag, 0) + 1
    assert set(counts) == {names.audit_shard_tag(i, 3) for i in range(3)}
    assert min(counts.values()) > 120


def test_a_shard_outside_the_count_is_a_clear_error():
    with pytest.raises(ValueError, match="audit shard 3 is not one of 0..2"):
        names.audit_shard_tag(3, 3)
    with pytest.raises(ValueError, match="at least 1, not 0"):
        shard_of("chain", 0)


def test_a_spooled_batch_keeps_its_shard_and_a_line_from_before_shards_is_shard_0s():
    tag = names.audit_shard_tag(2, 3)
    batch = Batch("c", "", "1:ab", (b'{"a":1}',), ((names.consent_accesses("x", tag), b'{"ts":"t"}'),), tag)
    assert Batch.parse(batch.line()) == batch
    old = b'{"v":1,"chain":"c","expected":"","head":"1:ab","records":[{"a":1}],"accesses":[]}'
    assert Batch.parse(old).shard == names.AUDIT_TAG


def test_a_listed_shard_tag_audit_shard_tag_could_not_make_is_refused():
    """A tag becomes a key's hash tag and an archive directory's name: one written into Redis by someone else (a path,
    another key's tag) must not be followed."""
    from gateway.store.audit import shard_tags

    made = [names.audit_shard_tag(i, 3) for i in range(3)]
    assert shard_tags([tag.encode() for tag in made[1:]]) == made[:1] + sorted(made[1:])
    for strange in ("../../etc", "audit-1.2/../x", "tpp-demo", "audit-1"):
        with pytest.raises(ValueError, match="not an audit shard"):
            shard_tags([made[1], strange])
