"""Each TPP's activity hour by hour, read from the audit records, and the anomalies a security team should look at.

The admin page and `obgw audit anomalies` both read this module, so they cannot disagree. Flags, each with the
figures that raised it:
- a surge: a TPP's unattended calls, or its refusals, in the latest hour are far above its own norm — more than
  SURGE_FACTOR times its mean per hour over the hours before, and at least SURGE_MARGIN above that mean (a TPP going
  from 0 to 2 refusals is not a surge);
- a new certificate: calls in the latest hour from a client certificate (RFC 8705 x5t#S256) that the TPP did not
  use in the hours before, while it did call with another one.
Calls refused before the caller was identified are counted under UNIDENTIFIED; operators' records are not calls.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

SURGE_FACTOR = 3.0
SURGE_MARGIN = 20
UNIDENTIFIED = "(unidentified)"
RATE_LIMITED = "ratelimit.exceeded"


@dataclass
class Activity:
    """One TPP's calls per hour (index 0 the oldest hour, -1 the latest) and the certificates it used."""
    client_id: str
    calls: list[int]
    refusals: list[int]
    rate_limited: list[int]
    unattended: list[int]
    certificates: dict[str, tuple[int, int]] = field(default_factory=dict)  # thumbprint → (first hour, calls)

    @property
    def total(self) -> int:
        return sum(self.calls)


@dataclass(frozen=True)
class Flag:
    client_id: str
    kind: str       # "unattended surge" | "refusal surge" | "new certificate"
    detail: str


def hour_starts(now: datetime, hours: int) -> list[datetime]:
    """The start of each hour of the window, oldest first; the last one ends at `now`."""
    return [now - timedelta(hours=hours - i) for i in range(hours)]


def activity(records: Iterable[Mapping[str, object]], now: datetime, hours: int = 24) -> dict[str, Activity]:
    """Per TPP (client id), the window's calls hour by hour, ending at `now`; records outside it are ignored."""
    start = now - timedelta(hours=hours)
    found: dict[str, Activity] = {}
    for record in records:
        if record.get("operator"):
            continue  # an operator's own action (a re-identifying search), not a TPP's call
        moment = datetime.fromisoformat(str(record["ts"]))
        if not start <= moment < now:
            continue
        hour = min(hours - 1, int((moment - start).total_seconds() // 3600))
        client = str(record.get("client_id") or UNIDENTIFIED)
        tpp = found.get(client)
        if tpp is None:
            tpp = found[client] = Activity(client, [0] * hours, [0] * hours, [0] * hours, [0] * hours)
        tpp.calls[hour] += 1
        if record.get("decision") == "refuse":
            tpp.refusals[hour] += 1
        if record.get("reason") == RATE_LIMITED:
            tpp.rate_limited[hour] += 1
        if record.get("unattended"):
            tpp.unattended[hour] += 1
        thumbprint = record.get("cert_thumbprint")
        if thumbprint:
            first, count = tpp.certificates.get(str(thumbprint), (hour, 0))
            tpp.certificates[str(thumbprint)] = (min(first, hour), count + 1)
    return found


def _surge(series: list[int]) -> tuple[int, float] | None:
    """(the latest hour, the mean of the hours before) if the latest is a surge."""
    latest, before = series[-1], series[:-1]
    norm = sum(before) / len(before) if before else 0.0
    if latest > SURGE_FACTOR * norm and latest >= norm + SURGE_MARGIN:
        return latest, norm
    return None


def anomalies(activities: Mapping[str, Activity]) -> list[Flag]:
    flags = []
    for client, tpp in sorted(activities.items()):
        for kind, series in (("unattended surge", tpp.unattended), ("refusal surge", tpp.refusals)):
            surge = _surge(series)
            if surge:
                flags.append(Flag(client, kind, f"{surge[0]} in the latest hour against {surge[1]:.1f} an hour "
                                                f"before"))
        latest = len(tpp.calls) - 1
        earlier = {t for t, (first, _) in tpp.certificates.items() if first < latest}
        for thumbprint, (first, count) in sorted(tpp.certificates.items()):
            if first == latest and earlier:
                flags.append(Flag(client, "new certificate", f"{count} calls in the latest hour with certificate "
                                                             f"{thumbprint}, not used before in the window"))
    return flags


def window_start(now: datetime | None, hours: int) -> tuple[datetime, datetime]:
    """(start, end) of a window of `hours` ending now (UTC)."""
    end = now or datetime.now(timezone.utc)
    return end - timedelta(hours=hours), end
