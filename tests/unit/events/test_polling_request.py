"""What a poll asks (OBEventPolling1, RFC 8936 §2.4), read before anything is done: no I/O."""
from __future__ import annotations

import orjson
import pytest

from gateway.errors import Refusal
from gateway.events.api import MAX_ACKS, MAX_EVENTS, EventPolling


def _asked(body: object | bytes):
    return EventPolling._asked(body if isinstance(body, bytes) else orjson.dumps(body))


def test_an_empty_poll_is_a_long_poll_for_as_many_as_one_answer_holds():
    assert _asked(b"") == _asked({}) == (MAX_EVENTS, False, [], [])


def test_acknowledgements_errors_and_limits_are_read_as_given():
    body = {"maxEvents": 3, "returnImmediately": True, "ack": ["a", "b"],
            "setErrs": {"c": {"err": "jwtIss", "description": "Issuer is invalid"}, "b": {"err": "x",
                                                                                    "description": "y"}}}
    # An event both acknowledged and reported in error is acknowledged.
    assert _asked(body) == (3, True, ["a", "b"], ["c"])
    assert _asked({"maxEvents": 0})[0] == 0                      # acknowledge only
    assert _asked({"maxEvents": 10_000})[0] == MAX_EVENTS        # at most what one answer holds


@pytest.mark.parametrize("body, path", [
    ({"maxEvents": -1}, "maxEvents"), ({"maxEvents": "3"}, "maxEvents"), ({"maxEvents": True}, "maxEvents"),
    ({"returnImmediately": "yes"}, "returnImmediately"), ({"ack": "a"}, "ack"), ({"ack": [""]}, "ack"),
    ({"ack": ["x" * 129]}, "ack"), ({"ack": ["a"] * (MAX_ACKS + 1)}, "ack"),
    ({"setErrs": {"a": {"err": "x"}}}, "setErrs"), ({"setErrs": {"a": {"err": "x", "description": "y", "z": 1}}},
                                                   "setErrs"),
    ({"setErrs": []}, "setErrs"), ({"wait": 30}, "wait")])
def test_a_poll_the_schema_does_not_allow_is_refused_naming_the_field(body, path):
    with pytest.raises(Refusal) as refused:
        _asked(body)
    assert (refused.value.reason, refused.value.path) == ("request.field_invalid", path)


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"ack": [], "ack": []}'])
def test_a_body_that_is_not_one_json_object_is_refused(body):
    with pytest.raises(Refusal) as refused:
        _asked(body)
    assert refused.value.reason == "request.invalid_json"
