"""Method + path → the route that answers it, with Starlette's `compile_path` (one template syntax in the code base).

Routes are tried most specific first: segment by segment, a literal beats a parameter, so a later
`/accounts/summary` wins over `/accounts/{AccountId}` whatever the order of routes.yaml; ties keep the file's order.
As in Starlette's Router, a route whose path matches but whose method does not is passed over, and only when no route
matches both does the caller learn the path's allowed methods (405) rather than nothing (404).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from starlette.routing import compile_path

from gateway.policy.model import RoutePolicy


@dataclasses.dataclass(frozen=True, slots=True)
class RouteMatch:
    route: RoutePolicy
    path_params: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    """The path exists, but not for this method: answer 405 with `Allow: <allowed>`."""

    allowed: tuple[str, ...]  # sorted


def _specificity(path: str) -> tuple[int, ...]:
    return tuple(1 if segment.startswith("{") else 0 for segment in path.split("/"))


class Router:
    """The routes, compiled once into (regex, route) pairs, most specific first."""

    __slots__ = ("_entries",)

    def __init__(self, routes: Iterable[RoutePolicy]) -> None:
        ordered = sorted(enumerate(routes), key=lambda entry: (_specificity(entry[1].path), entry[0]))
        self._entries = tuple((compile_path(route.path)[0], route) for _, route in ordered)

    def match(self, method: str, path: str) -> RouteMatch | MethodNotAllowed | None:
        """The route for this call; MethodNotAllowed if only other methods have the path; None if nothing does."""
        allowed = set()
        for regex, route in self._entries:
            found = regex.match(path)
            if found is None:
                continue
            params = found.groupdict()
            # A dot-segment is never an identifier: treating it as one would let `..` climb the back-end's paths.
            if any(value in (".", "..") for value in params.values()):
                continue
            if route.method == method:
                return RouteMatch(route, MappingProxyType(params))
            allowed.add(route.method)
        return MethodNotAllowed(tuple(sorted(allowed))) if allowed else None
