"""W3C Trace Context (Recommendation, level 1): the `traceparent` a call arrives with, and the one sent to the bank.

A valid `traceparent` from the TPP is continued: its trace id is kept (and logged), its parent id is this call's
parent. Anything else (absent, malformed, version ff, an all-zero id) starts a new trace, as §4.3 says; nothing the
caller sent is reflected then. The gateway is one span per call: the bank gets `00-<trace id>-<our span id>-<flags>`.

Not returned to the TPP: level 1 defines `traceparent` as a request header only (the response header
`traceresponse` is a draft of level 2), and the TPP already quotes `x-fapi-interaction-id` to the bank.
`tracestate` is not passed on: it carries other vendors' data the bank need not see.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

HEADER = b"traceparent"
# version-traceid-parentid-flags, lower-case hex (§3.2.2); a future version may append "-..." after these 55 bytes.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z", re.DOTALL)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


@dataclass(frozen=True, slots=True)
class Trace:
    trace_id: str
    span_id: str            # this call's span at the gateway: the parent id the bank sees
    parent_id: str | None   # the TPP's span, when it sent a valid traceparent
    flags: str = "00"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def _new_id(hex_digits: int) -> str:
    """A random non-zero id (§3.2.2.3: unique, random; not a secret, so not from the OS's CSPRNG, a syscall each)."""
    return f"{random.getrandbits(hex_digits * 4) or 1:0{hex_digits}x}"


def parse(value: bytes | None) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) of a valid traceparent, or None."""
    if not value or len(value) > 512:
        return None
    found = _TRACEPARENT.match(value.strip(b" \t"))
    if found is None:
        return None
    version, trace_id, parent_id, flags, rest = (part.decode("ascii") if part is not None else None
                                                 for part in found.groups())
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    assert trace_id is not None and parent_id is not None and flags is not None
    # Only the sampled bit is defined in version 00; a higher version's other bits are not ours to pass on.
    return trace_id, parent_id, "01" if int(flags, 16) & 1 else "00"


def continue_or_start(value: bytes | None) -> Trace:
    given = parse(value)
    if given is None:
        return Trace(_new_id(32), _new_id(16), None)
    trace_id, parent_id, flags = given
    return Trace(trace_id, _new_id(16), parent_id, flags)
