"""The compiled policy objects: immutable, built once at start by compile.py, shared by every request."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import quote

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def path_parameters(template: str) -> list[str]:
    """The `{Name}` parameters of a path template, in order (repeats kept, so that they can be reported)."""
    return _PARAMETER.findall(template)


@dataclasses.dataclass(frozen=True, slots=True)
class ServicePolicy:
    name: str
    url: str  # no trailing slash; may end in a base path
    connect_timeout_ms: int
    timeout_ms: int
    max_connections: int


@dataclasses.dataclass(frozen=True, slots=True)
class RoutePolicy:
    id: str
    method: str
    path: str
    service: ServicePolicy
    upstream_path: str
    scope: str | None
    permissions: frozenset[str]  # any one of them suffices; empty: no permission check
    account_param: str | None
    response_type: str | None
    timeout_ms: int  # effective: the route's own, else the service's

    def upstream_target(self, path_params: Mapping[str, str]) -> str:
        """The absolute back-end URL for a call with these path parameters.

        Each value is quoted with no safe characters, so `/`, `?` and `#` inside a value stay inside its segment;
        a value that is itself a dot-segment (`.` or `..`) has its dots encoded, so that no URL normaliser between
        here and the back-end can resolve it to the parent path.
        """
        quoted = {name: _segment(value) for name, value in path_params.items()}
        return self.service.url + self.upstream_path.format_map(quoted)


def _segment(value: str) -> str:
    return value.replace(".", "%2E") if value in (".", "..") else quote(value, safe="")
