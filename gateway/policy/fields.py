"""The one evaluator of field rules: `minimise` (what the TPP gets) and `exposure` (what `policy explain` says it
gets) both read the same compiled FieldSet, so the two cannot drift.

Allow-list semantics: a field leaves only if a rule names it (or a field above it) and the consent grants one of the
rule's permissions; a rule on an object lets its whole content through, except where deeper rules say otherwise.
Record filters run first: records of unselected accounts, of directions not granted (Credits/Debits), or outside
the consent's transaction window are dropped. Anything malformed raises MinimiseError: the caller sends no body.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from gateway.policy.model import FieldNode, FieldRule, FieldSet

PAN_SCHEME = "UK.OBIE.PAN"
_DROP = object()


class MinimiseError(Exception):
    """The answer cannot be cut to the policy (not the shape the rules expect)."""


def _no_link(link: object) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Entitlement:
    """What a consent entitles the TPP to (its permissions, the accounts the customer selected, the transaction
    window), the URL the answer is served at (its Links.Self) and how a back-end link becomes the gateway's (None:
    it leads nowhere the gateway serves, so it is dropped): what the minimiser needs. Not an OAuth grant."""
    permissions: frozenset[str]
    accounts: frozenset[str]
    window: tuple[datetime | None, datetime | None] = (None, None)
    public_url: str = ""
    public_link: Callable[[object], str | None] = _no_link
    instructed_amount: str = ""  # a payment consent's "<Amount> <Currency>", as authorised ("" for others)


def parse_moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def minimise(document: object, fields: FieldSet, entitlement: Entitlement) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise MinimiseError("the answer is not a JSON object")
    if fields.records is not None:
        document = _filter_records(document, fields.records, fields, entitlement)
    result = _apply(document, fields.root, entitlement, False)
    if result is _DROP or not isinstance(result, dict):
        raise MinimiseError("nothing of the answer is allowed")
    return result


def _filter_records(document: dict[str, Any], records: tuple[str, ...], fields: FieldSet,
                    entitlement: Entitlement) -> dict[str, Any]:
    container: object = document
    for name in records:
        # Anything but objects on the way down would let the records past their filters: refuse it.
        if not isinstance(container, dict):
            raise MinimiseError(f"{'.'.join(records)}: {name} is not inside an object")
        if name not in container:
            return document  # no records at all
        container = container[name]
    if not isinstance(container, list):
        raise MinimiseError(f"{'.'.join(records)} is not a list")
    return _replace_at(document, records, [r for r in container if _record_allowed(r, fields, entitlement)])


def _replace_at(document: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    """A copy of `document` with the value at `path` replaced; the original is never changed in place."""
    head, *rest = path
    return {**document, head: _replace_at(document[head], tuple(rest), value) if rest else value}


def _record_allowed(record: object, fields: FieldSet, entitlement: Entitlement) -> bool:
    if not isinstance(record, dict):
        raise MinimiseError("a record is not an object")
    for field in (fields.account_field, fields.direction[0] if fields.direction else None):
        if field is not None and record.get(field) is not None and not isinstance(record[field], str):
            raise MinimiseError(f"a record's {field} is not a string")
    if fields.account_field is not None and record.get(fields.account_field) not in entitlement.accounts:
        return False  # a record of another account, or of none, is not the customer's to share
    if fields.direction is not None:
        field, permissions = fields.direction
        value = record.get(field)
        permission = permissions.get(value) if isinstance(value, str) else None
        if permission is None or permission not in entitlement.permissions:
            return False
    if fields.window is not None:
        window = fields.window
        ends = (window.field,) if window.end_field is None else (window.field, window.end_field)
        return all(_inside(record.get(name), entitlement.window) for name in ends)
    return True


def _inside(value: object, window: tuple[datetime | None, datetime | None]) -> bool:
    since, until = window
    if not isinstance(value, str):
        return False  # a record whose date cannot be read cannot be shown to be inside the window
    try:
        moment = parse_moment(value)
    except ValueError:
        return False
    return moment is not None and not (since and moment < since) and not (until and moment > until)


def _allowed(rule: FieldRule, entitlement: Entitlement) -> bool:
    return not rule.permissions or not rule.permissions.isdisjoint(entitlement.permissions)  # no set built


def _apply(value: object, node: FieldNode | None, entitlement: Entitlement, whole: bool) -> object:
    if whole and (node is None or not node.children):
        return value  # allowed whole, with no deeper rule: nothing inside it to cut (the document is ours to share)
    if isinstance(value, list):
        out_list = []
        for item in value:
            result = _apply(item, node, entitlement, whole)
            if result is not _DROP:
                out_list.append(result)
        return out_list
    if isinstance(value, dict):
        out = {}
        children = node.children if node is not None else {}
        for key, item in value.items():
            child = children.get(key)
            if child is None:
                if whole:
                    out[key] = item
                continue
            rule = child.rule
            if rule is not None and not _allowed(rule, entitlement):
                continue
            result = _apply(item, child, entitlement, whole or rule is not None)
            if result is not _DROP and rule is not None and (rule.mask or rule.rewrite):
                result = _transform(result, rule, entitlement, value)
            if result is not _DROP:
                out[key] = result
        return out
    return value if whole else _DROP


def _transform(value: object, rule: FieldRule, entitlement: Entitlement, parent: dict[str, Any]) -> object:
    if (rule.mask == "pan" and "ReadPAN" not in entitlement.permissions
            and parent.get("SchemeName", PAN_SCHEME) == PAN_SCHEME):
        if not isinstance(value, str):
            raise MinimiseError("a card number is not a string")  # never let one leave unmasked
        return mask_pan(value)
    if rule.rewrite == "public_url":
        return entitlement.public_url
    if rule.rewrite == "public_link":
        link = entitlement.public_link(value)
        return _DROP if link is None else link
    return value


def mask_pan(pan: str) -> str:
    """UK OB (ReadPAN): without the permission, a masked PAN showing at most the last 4 digits."""
    return "*" * max(len(pan) - 4, 0) + pan[-4:]


@dataclass(frozen=True, slots=True)
class Exposure:
    exposed: tuple[str, ...]
    masked: tuple[str, ...]
    hidden: tuple[str, ...]
    records: tuple[str, ...]      # what the record filters keep, in words


def exposure(fields: FieldSet, permissions: Iterable[str]) -> Exposure:
    """What a consent with `permissions` gets of this response type, rule by rule (for `obgw policy explain`)."""
    entitlement = Entitlement(frozenset(permissions), frozenset())
    exposed, masked, hidden = [], [], []
    for rule in fields.rules:
        if not _path_allowed(fields.root, rule.path, entitlement):
            hidden.append(rule.path)
        elif rule.mask == "pan" and "ReadPAN" not in entitlement.permissions:
            masked.append(rule.path)
        else:
            exposed.append(rule.path)
    notes = []
    if fields.account_field:
        notes.append("only the accounts the customer selected")
    if fields.direction:
        field, by_direction = fields.direction
        kept = [d for d, permission in by_direction.items() if permission in entitlement.permissions]
        notes.append(f"{' and '.join(kept) or 'no'} records ({field})")
    if fields.window:
        span = fields.window.field + (f" and {fields.window.end_field}" if fields.window.end_field else "")
        notes.append(f"only {span} within the consent's TransactionFromDateTime..ToDateTime")
    return Exposure(tuple(exposed), tuple(masked), tuple(hidden), tuple(notes))


def _path_allowed(root: FieldNode, path: str, entitlement: Entitlement) -> bool:
    """Every rule on the way down to `path` (its own included) is granted."""
    node = root
    for name in (part.removesuffix("[]") for part in path.split(".")):
        node = node.children[name]
        if node.rule is not None and not _allowed(node.rule, entitlement):
            return False
    return True


class WindowError(ValueError):
    """A date-time query parameter the gateway cannot pass on; `param` names it."""

    def __init__(self, param: str) -> None:
        super().__init__(f"{param} is not an ISO 8601 date-time between 1970 and 2100")
        self.param = param


_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc)


def _asked(query: Mapping[str, str], param: str) -> datetime | None:
    """A TPP's date-time parameter, checked: an unencoded "+" of the offset arrives as a space; anything the
    gateway cannot read, or outside 1970..2100, is refused here rather than handed to the bank."""
    raw = query.get(param)
    if not raw:
        return None  # absent, or given empty: not asked
    try:
        moment = parse_moment(_SPACED_OFFSET.sub(r"\1+\2", raw))
    except ValueError:
        raise WindowError(param) from None
    if moment is None or not _EARLIEST <= moment < _LATEST:
        raise WindowError(param)
    return moment


def windows(fields: FieldSet, query: Mapping[str, str], entitlement: Entitlement) -> dict[str, str]:
    """The window query parameters to send the back-end: the TPP's own, narrowed to the consent's window."""
    if fields.window is None:
        return {}
    since, until = entitlement.window
    asked_since, asked_until = _asked(query, fields.window.from_param), _asked(query, fields.window.to_param)
    if asked_since and (since is None or asked_since > since):
        since = asked_since
    if asked_until and (until is None or asked_until < until):
        until = asked_until
    params = {}
    if since:
        params[fields.window.from_param] = since.isoformat()
    if until:
        params[fields.window.to_param] = until.isoformat()
    return params
