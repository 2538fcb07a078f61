"""Object storage for the sandbox: every Stripe object by id, and by type in creation order.

Objects are kept as plain dicts in the exact shape Stripe returns; responses are serialised
copies, so a handler never leaks a reference a caller could mutate.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from .errors import NotFoundError

_ALPHABET = string.ascii_letters + string.digits


class Store:
    def __init__(self) -> None:
        self._by_id: dict[str, dict[str, Any]] = {}
        self._by_type: dict[str, dict[str, dict[str, Any]]] = {}

    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._by_id[obj["id"]] = obj
        self._by_type.setdefault(obj["object"], {})[obj["id"]] = obj
        return obj

    def get(self, object_type: str, object_id: str) -> dict[str, Any] | None:
        return self._by_type.get(object_type, {}).get(object_id)

    def get_any(self, object_id: str) -> dict[str, Any] | None:
        return self._by_id.get(object_id)

    def require(
        self, object_type: str, object_id: Any, kind: str | None = None, param: str = "id"
    ) -> dict[str, Any]:
        obj = self.get(object_type, object_id) if isinstance(object_id, str) else None
        if obj is None:
            raise NotFoundError(kind or object_type.split(".")[-1], str(object_id), param=param)
        return obj

    def all(self, object_type: str) -> list[dict[str, Any]]:
        """Objects of one type, oldest first."""
        return list(self._by_type.get(object_type, {}).values())

    def delete(self, object_type: str, object_id: str) -> None:
        self._by_type.get(object_type, {}).pop(object_id, None)
        self._by_id.pop(object_id, None)

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self._by_type

    def restore(self, by_type: dict[str, dict[str, dict[str, Any]]]) -> None:
        self._by_type = by_type
        self._by_id = {oid: obj for objs in by_type.values() for oid, obj in objs.items()}
