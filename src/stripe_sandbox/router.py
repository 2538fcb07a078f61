"""Route table: (method, path pattern) → handler.

Patterns use stripe-python's own placeholders (`/v1/customers/{customer}`), so that a route can
be matched to the parameter types stripe-python declares for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    regex: re.Pattern[str]


class Routes:
    """A group of routes declared by one resource module."""

    def __init__(self) -> None:
        self.items: list[Route] = []

    def add(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            regex = re.compile(
                "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
            )
            self.items.append(Route(method.upper(), pattern, handler, regex))
            return handler

        return register

    def get(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.add("GET", pattern)

    def post(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.add("POST", pattern)

    def delete(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.add("DELETE", pattern)


class Router:
    def __init__(self, groups: list[Routes]) -> None:
        self._routes = [route for group in groups for route in group.items]
        # Literal segments beat placeholders: `/v1/customers/search` before `/v1/customers/{id}`.
        self._routes.sort(key=lambda r: r.pattern.count("{"))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.regex.match(path)
            if found:
                return route, found.groupdict()
        return None

    def has_path(self, path: str) -> bool:
        return any(route.regex.match(path) for route in self._routes)

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)
