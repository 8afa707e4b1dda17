"""Hourly activity per TPP read from audit records, and the anomaly flags raised from it (gateway/audit/activity.py).

Records are synthetic, shaped as the chain stores them: only the fields activity() reads matter.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest

from gateway.audit.activity import (
    RATE_LIMITED,
    SURGE_FACTOR,
    SURGE_MARGIN,
    UNIDENTIFIED,
    activity,
    anomalies,
    hour_starts,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
HOURS = 24
CERT_A = "a" * 43
CERT_B = "b" * 43


def record(hours_ago: float, client_id: str | None = "tpp-demo", decision: str = "allow", reason: str | None = None,
           unattended: bool | None = None, cert: str | None = CERT_A) -> dict:
    """A record of a call `hours_ago` before NOW (0.5: in the latest hour)."""
    moment = NOW - timedelta(hours=hours_ago)
    fields = {"ts": moment.isoformat(timespec="milliseconds"), "interaction_id": "i", "method": "GET",
              "route": "/open-banking/v3.1/aisp/accounts", "status": 200 if decision == "allow" else 403,
              "decision": decision, "reason": reason, "latency_ms": 1.0, "client_id": client_id,
              "consent_id": None, "cert_thumbprint": cert}
    if unattended is not None:
        fields["unattended"] = unattended
    return fields


def steady(per_hour: int, hours: int = HOURS, **kind) -> list[dict]:
    """`per_hour` records in every hour of the window but the latest (hour index 0 … hours-2)."""
    return [record(hours_ago + 0.5, **kind) for hours_ago in range(1, hours) for _ in range(per_hour)]


def latest_hour(count: int, **kind) -> list[dict]:
    return [record(0.5, **kind) for _ in range(count)]


def flags_of(records: list[dict]) -> list[tuple[str, str]]:
    return [(flag.client_id, flag.kind) for flag in anomalies(activity(records, NOW, HOURS))]


# ---------------------------------------------------------------- buckets


def test_each_call_is_counted_in_the_hour_it_arrived_oldest_hour_first():
    records = [record(23.5), record(23.5), record(10.5), record(0.5)]
    tpp = activity(records, NOW, HOURS)["tpp-demo"]
    assert len(tpp.calls) == HOURS
    assert tpp.calls[0] == 2 and tpp.calls[13] == 1 and tpp.calls[-1] == 1
    assert tpp.total == 4 and sum(tpp.calls) == 4


def test_hour_starts_run_oldest_first_and_the_last_hour_ends_now():
    starts = hour_starts(NOW, HOURS)
    assert starts[0] == NOW - timedelta(hours=24) and starts[-1] == NOW - timedelta(hours=1)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(starts))


def test_refusals_rate_limit_hits_and_unattended_calls_are_counted_per_hour():
    records = [
        record(2.5),
        record(2.5, decision="refuse", reason="consent.not_authorised"),
        record(2.5, decision="refuse", reason=RATE_LIMITED),
        record(0.5, decision="refuse", reason=RATE_LIMITED),
        record(0.5, unattended=True),
        record(0.5, unattended=True),
        record(0.5, unattended=False),
    ]
    tpp = activity(records, NOW, HOURS)["tpp-demo"]
    assert (tpp.calls[21], tpp.refusals[21], tpp.rate_limited[21], tpp.unattended[21]) == (3, 2, 1, 0)
    assert (tpp.calls[-1], tpp.refusals[-1], tpp.rate_limited[-1], tpp.unattended[-1]) == (4, 1, 1, 2)
    assert sum(tpp.calls) == 7 and sum(tpp.refusals) == 3 and sum(tpp.rate_limited) == 2 and sum(tpp.unattended) == 2


def test_rate_limited_counts_only_the_ratelimit_exceeded_reason():
    assert RATE_LIMITED == "ratelimit.exceeded"
    records = [record(0.5, decision="refuse", reason="ratelimit.exceeded"),
               record(0.5, decision="refuse", reason="ratelimit.unavailable"),
               record(0.5, decision="refuse", reason="consent.unattended_limit")]
    tpp = activity(records, NOW, HOURS)["tpp-demo"]
    assert tpp.rate_limited[-1] == 1 and tpp.refusals[-1] == 3


def test_each_tpp_has_its_own_activity():
    records = [record(0.5, client_id="tpp-demo"), record(0.5, client_id="tpp-other"),
               record(1.5, client_id="tpp-other")]
    tpps = activity(records, NOW, HOURS)
    assert set(tpps) == {"tpp-demo", "tpp-other"}
    assert tpps["tpp-demo"].total == 1 and tpps["tpp-other"].total == 2
    assert tpps["tpp-other"].client_id == "tpp-other"


def test_records_outside_the_window_are_ignored():
    records = [record(24.001), record(30), record(-0.001), record(-5), record(23.999), record(0.001)]
    tpp = activity(records, NOW, HOURS)["tpp-demo"]
    assert tpp.total == 2 and tpp.calls[0] == 1 and tpp.calls[-1] == 1


def test_the_window_starts_inclusively_and_ends_exclusively_at_now():
    at_start = {**record(0), "ts": (NOW - timedelta(hours=HOURS)).isoformat(timespec="milliseconds")}
    at_now = {**record(0), "ts": NOW.isoformat(timespec="milliseconds")}
    tpps = activity([at_start, at_now], NOW, HOURS)
    assert tpps["tpp-demo"].total == 1 and tpps["tpp-demo"].calls[0] == 1


def test_a_window_with_no_records_has_no_tpps_and_no_flags():
    assert activity([record(25), record(-1)], NOW, HOURS) == {}
    assert anomalies({}) == []


def test_calls_refused_before_the_caller_was_identified_are_counted_as_unidentified():
    records = [record(0.5, client_id=None, decision="refuse", reason="identity.no_certificate", cert=None),
               {**record(1.5, decision="refuse", reason="route.not_found", cert=None), "client_id": ""},
               {k: v for k, v in record(2.5, cert=None).items() if k != "client_id"},
               record(0.5)]
    tpps = activity(records, NOW, HOURS)
    assert set(tpps) == {UNIDENTIFIED, "tpp-demo"}
    unidentified = tpps[UNIDENTIFIED]
    assert unidentified.client_id == UNIDENTIFIED and unidentified.total == 3 and sum(unidentified.refusals) == 2
    assert unidentified.certificates == {} and tpps["tpp-demo"].total == 1


def test_each_certificate_is_kept_with_the_first_hour_it_was_used_and_its_calls():
    records = [record(5.5, cert=CERT_A), record(20.5, cert=CERT_A), record(0.5, cert=CERT_B), record(0.5, cert=None)]
    tpp = activity(records, NOW, HOURS)["tpp-demo"]
    assert tpp.certificates == {CERT_A: (3, 2), CERT_B: (23, 1)}


# ---------------------------------------------------------------- surges


def test_the_surge_thresholds_are_three_times_the_mean_and_twenty_above_it():
    assert (SURGE_FACTOR, SURGE_MARGIN) == (3.0, 20)


@pytest.mark.parametrize("kind, series", [
    ("unattended surge", {"unattended": True}),
    ("refusal surge", {"decision": "refuse", "reason": "consent.not_authorised"}),
])
def test_a_surge_over_a_small_norm_needs_the_margin_above_the_mean(kind, series):
    # Mean 2 an hour: 3x is 6, mean + 20 is 22; the margin decides.
    norm = 2
    below, above = norm + SURGE_MARGIN - 1, norm + SURGE_MARGIN
    assert below > SURGE_FACTOR * norm  # above the factor, yet not a surge
    assert flags_of(steady(norm, **series) + latest_hour(below, **series)) == []
    assert flags_of(steady(norm, **series) + latest_hour(above, **series)) == [("tpp-demo", kind)]


@pytest.mark.parametrize("kind, series", [
    ("unattended surge", {"unattended": True}),
    ("refusal surge", {"decision": "refuse", "reason": "consent.not_authorised"}),
])
def test_a_surge_over_a_large_norm_needs_more_than_three_times_the_mean(kind, series):
    # Mean 15 an hour: mean + 20 is 35, 3x is 45; the factor decides (strictly more than 3x).
    norm = 15
    below, above = int(SURGE_FACTOR * norm), int(SURGE_FACTOR * norm) + 1
    assert below >= norm + SURGE_MARGIN  # above the margin, yet not a surge
    assert flags_of(steady(norm, **series) + latest_hour(below, **series)) == []
    assert flags_of(steady(norm, **series) + latest_hour(above, **series)) == [("tpp-demo", kind)]


def test_a_tpp_going_from_nothing_to_a_few_refusals_is_not_a_surge_but_to_twenty_is():
    refused = {"decision": "refuse", "reason": "consent.not_authorised"}
    assert flags_of(steady(1) + latest_hour(19, **refused)) == []
    flagged = anomalies(activity(steady(1) + latest_hour(SURGE_MARGIN, **refused), NOW, HOURS))
    assert [(f.client_id, f.kind) for f in flagged] == [("tpp-demo", "refusal surge")]
    assert flagged[0].detail == "20 in the latest hour against 0.0 an hour before"


def test_the_flag_detail_gives_the_latest_hour_and_the_mean_before():
    unattended = {"unattended": True}
    [flag] = anomalies(activity(steady(2, **unattended) + latest_hour(30, **unattended), NOW, HOURS))
    assert flag.kind == "unattended surge" and flag.detail == "30 in the latest hour against 2.0 an hour before"


def test_a_surge_of_calls_with_the_customer_present_is_not_an_unattended_surge():
    assert flags_of(steady(2) + latest_hour(200)) == []


def test_an_unattended_surge_of_one_tpp_flags_only_that_tpp():
    unattended = {"unattended": True}
    records = (steady(2, client_id="tpp-demo", **unattended) + latest_hour(40, client_id="tpp-demo", **unattended)
               + steady(2, client_id="tpp-other", **unattended) + latest_hour(2, client_id="tpp-other", **unattended))
    assert flags_of(records) == [("tpp-demo", "unattended surge")]


# ---------------------------------------------------------------- certificates


def test_a_new_certificate_in_the_latest_hour_is_flagged_when_another_was_used_before():
    records = steady(3, cert=CERT_A) + latest_hour(4, cert=CERT_B)
    flags = anomalies(activity(records, NOW, HOURS))
    assert [(f.client_id, f.kind) for f in flags] == [("tpp-demo", "new certificate")]
    assert CERT_B in flags[0].detail and "4 calls" in flags[0].detail and CERT_A not in flags[0].detail


def test_a_first_certificate_is_not_flagged_when_the_tpp_had_not_called_before():
    assert flags_of(latest_hour(5, cert=CERT_B)) == []


def test_two_certificates_both_new_in_the_latest_hour_are_not_flagged():
    assert flags_of(latest_hour(2, cert=CERT_A) + latest_hour(2, cert=CERT_B)) == []


def test_a_certificate_used_earlier_in_the_window_is_not_new():
    records = [record(12.5, cert=CERT_B)] + steady(3, cert=CERT_A) + latest_hour(4, cert=CERT_B)
    assert flags_of(records) == []


def test_calls_without_a_certificate_earlier_do_not_make_a_new_certificate():
    assert flags_of(steady(3, cert=None) + latest_hour(4, cert=CERT_B)) == []


def test_a_certificate_used_only_before_the_window_is_new_in_it():
    records = [record(30, cert=CERT_B)] + steady(3, cert=CERT_A) + latest_hour(1, cert=CERT_B)
    assert flags_of(records) == [("tpp-demo", "new certificate")]


def test_a_new_certificate_of_one_tpp_is_not_compared_with_another_tpps():
    records = steady(3, client_id="tpp-other", cert=CERT_A) + latest_hour(2, client_id="tpp-demo", cert=CERT_B)
    assert flags_of(records) == []


# ---------------------------------------------------------------- steady traffic


def test_steady_traffic_raises_no_flag():
    records = []
    for kind in ({}, {"unattended": True}, {"decision": "refuse", "reason": "consent.not_authorised"},
                 {"decision": "refuse", "reason": RATE_LIMITED}):
        records += steady(10, **kind) + latest_hour(10, **kind)
    records += steady(5, client_id="tpp-other", cert=CERT_B) + latest_hour(5, client_id="tpp-other", cert=CERT_B)
    assert flags_of(records) == []


def test_flags_are_listed_by_client_id():
    unattended = {"unattended": True}
    records = (steady(1, client_id="tpp-zeta", **unattended) + latest_hour(30, client_id="tpp-zeta", **unattended)
               + steady(1, client_id="tpp-alpha", **unattended) + latest_hour(30, client_id="tpp-alpha", **unattended))
    assert flags_of(records) == [("tpp-alpha", "unattended surge"), ("tpp-zeta", "unattended surge")]


def test_an_operators_reidentification_record_is_not_counted_as_a_call():
    operator = {**record(0.5, client_id=None, reason="audit.reidentified", cert=None), "method": "CLI", "status": 0,
                "route": "obgw audit search --customer", "subject": "cust-x", "operator": "ops@host"}
    tpps = activity([operator, record(0.5)], NOW, HOURS)
    assert set(tpps) == {"tpp-demo"}
