"""Lists, search and `expand[]`, as Stripe shapes them.

Lists are newest first, pages of `limit` (default 10, at most 100) with `starting_after` /
`ending_before` cursors; search pages use an opaque `page` token; expansion replaces an id with
the object it names, through dotted paths (`data.customer`, `latest_invoice.payment_intent`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InvalidRequestError
from .store import Store
from .wire import as_int, as_list


def list_limit(params: dict[str, Any]) -> int:
    limit = as_int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise InvalidRequestError(
            f"Invalid limit: must be between 1 and 100 (got {limit})", param="limit"
        )
    return limit


def newest_first(objs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered = list(objs)
    ordered.reverse()  # stored in creation order; stable for equal `created`
    ordered.sort(key=lambda o: o.get("created", 0), reverse=True)
    return ordered


def paginate(objs: Iterable[dict[str, Any]], params: dict[str, Any], url: str) -> dict[str, Any]:
    """A Stripe list page over objects already filtered; sorts newest first."""
    ordered = newest_first(objs)
    limit = list_limit(params)
    after, before = params.get("starting_after"), params.get("ending_before")
    ids = [o["id"] for o in ordered]
    if after:
        if after not in ids:
            raise InvalidRequestError(
                f"No such object: '{after}'", param="starting_after", code="resource_missing"
            )
        window = ordered[ids.index(after) + 1 :]
        page, has_more = window[:limit], len(window) > limit
    elif before:
        if before not in ids:
            raise InvalidRequestError(
                f"No such object: '{before}'", param="ending_before", code="resource_missing"
            )
        window = ordered[: ids.index(before)]
        page, has_more = window[-limit:], len(window) > limit
    else:
        page, has_more = ordered[:limit], len(ordered) > limit
    # `total_count` only for `include[]=total_count` (see `with_includes`).
    return {"object": "list", "data": page, "has_more": has_more, "url": url,
            "_total_count": len(ordered)}


def created_filter(
    params: dict[str, Any], field: str = "created"
) -> Callable[[dict[str, Any]], bool]:
    """`created=123` or `created[gte]=...&created[lt]=...`."""
    spec = params.get(field)
    if spec in (None, ""):
        return lambda obj: True
    if not isinstance(spec, dict):
        exact = as_int(spec, field)
        return lambda obj: obj.get(field) == exact
    bounds = {op: as_int(v, f"{field}[{op}]") for op, v in spec.items()}
    checks = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    for op in bounds:
        if op not in checks:
            raise InvalidRequestError(
                f"Received unknown parameter: {field}[{op}]",
                param=f"{field}[{op}]",
                code="parameter_unknown",
            )
    return lambda obj: all(checks[op](obj.get(field, 0), v) for op, v in bounds.items())


# --- search ------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?(?P<field>[a-z_]+(?:\[['"][^'"]+['"]\])?)\s*(?P<op>:|~|>=|<=|>|<)\s*"""
    r"""(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<num>-?\d+))\s*"""
)


def _clause_matches(obj: dict[str, Any], field: str, op: str, value: str) -> bool:
    meta = re.match(r"""metadata\[['"]([^'"]+)['"]\]""", field)
    actual: Any = (obj.get("metadata") or {}).get(meta.group(1)) if meta else obj.get(field)
    if isinstance(actual, bool):  # `active:'true'`
        actual = "true" if actual else "false"
    if op == ":":
        if actual is None:
            return False
        if field == "email":  # Stripe matches emails case-insensitively
            return str(actual).lower() == value.lower()
        return str(actual) == value
    if op == "~":
        return actual is not None and value.lower() in str(actual).lower()
    if actual is None:
        return False
    try:
        a, b = int(actual), int(value)
    except (TypeError, ValueError):
        return False
    return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def compile_query(query: str, allowed: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Stripe's search query language: clauses joined by AND or OR (not both)."""
    if not query or not query.strip():
        raise InvalidRequestError("Missing required param: query.", param="query",
                                  code="parameter_missing")
    pos, clauses, joiners = 0, [], []
    while True:
        m = _CLAUSE.match(query, pos)
        if not m:
            raise InvalidRequestError(
                f"Invalid search query: could not parse at position {pos}: {query[pos:]!r}",
                param="query",
            )
        field = m.group("field")
        base = field.split("[")[0]
        if base not in allowed:
            raise InvalidRequestError(
                f"Field '{base}' is an unsupported search field for this resource. "
                f"Supported fields: {', '.join(sorted(allowed))}.",
                param="query",
            )
        value = m.group("sq") if m.group("sq") is not None else m.group("dq")
        if value is None:
            value = m.group("num")
        clauses.append((bool(m.group("neg")), field, m.group("op"), value))
        pos = m.end()
        if pos >= len(query):
            break
        j = re.match(r"\s*(AND|OR)\s+", query[pos:])
        if not j:
            raise InvalidRequestError(
                f"Invalid search query: expected AND or OR at position {pos}", param="query"
            )
        joiners.append(j.group(1))
        pos += j.end()
    if len(set(joiners)) > 1:
        raise InvalidRequestError(
            "Search queries cannot mix AND and OR.", param="query"
        )
    combine = any if joiners and joiners[0] == "OR" else all

    def predicate(obj: dict[str, Any]) -> bool:
        return combine(
            _clause_matches(obj, field, op, value) != neg for neg, field, op, value in clauses
        )

    return predicate


def search_page(
    objs: Iterable[dict[str, Any]], params: dict[str, Any], url: str, allowed: set[str]
) -> dict[str, Any]:
    predicate = compile_query(params.get("query", ""), allowed)
    matched = [o for o in newest_first(objs) if predicate(o)]
    limit = list_limit(params)
    offset = 0
    if params.get("page"):
        token = str(params["page"])
        if not token.startswith("page_"):
            raise InvalidRequestError("Invalid page token.", param="page")
        offset = as_int(token[5:], "page")
    page = matched[offset : offset + limit]
    has_more = offset + limit < len(matched)
    return {
        "object": "search_result",
        "data": page,
        "has_more": has_more,
        "next_page": f"page_{offset + limit}" if has_more else None,
        "url": url,
    }


# --- expand ------------------------------------------------------------------------------


def expand(obj: Any, paths: list[str], store: Store) -> Any:
    """`obj` with ids at `paths` replaced by their objects. Only the dicts and lists along the
    paths are copied (the rest is shared with the store, never changed here): the caller makes
    its own copy for the wire (`public`), and a page of 100 subscriptions need not be copied
    whole twice."""
    result = obj
    for path in paths:
        result = _expand_path(result, path.split("."), store)
    return result


def _expand_path(node: Any, parts: list[str], store: Store) -> Any:
    if not parts or node is None:
        return node
    if isinstance(node, list):
        return [_expand_path(item, parts, store) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)  # this level only: the store's object stays as it is
    head, rest = parts[0], parts[1:]
    if head not in node and node.get(f"_{head}") is not None:
        # An includable field (`expand[]=tiers`); a price without tiers has none to show.
        node[head] = node[f"_{head}"]
    if node.get("object") == "list" and head == "data":
        node["data"] = [_expand_path(item, rest, store) for item in node.get("data", [])]
        return node
    value = node.get(head)
    if isinstance(value, str):
        target = store.get_any(value)
        if target is not None and target.get("deleted"):
            # Stripe expands a deleted object to its stub: id, object, deleted.
            value = {"id": target["id"], "object": target.get("object"), "deleted": True}
        elif target is not None:
            value = target
        node[head] = value
    if rest and head in node:
        node[head] = _expand_path(value, rest, store)
    return node


def expand_paths(params: dict[str, Any]) -> list[str]:
    return [str(p) for p in as_list(params.pop("expand", None), "expand")]


def include_fields(params: dict[str, Any]) -> list[str]:
    """`include[]=total_count`, the one optional field of Stripe's lists; taken out of the
    params as `expand` is, since stripe-python's parameter types do not declare it."""
    fields = [str(p) for p in as_list(params.pop("include", None), "include")]
    for index, name in enumerate(fields):
        if name != "total_count":
            raise InvalidRequestError(
                f"The sandbox supports only `total_count` in `include` (got `{name}`).",
                param=f"include[{index}]")
    return fields


def with_includes(result: Any, fields: list[str]) -> Any:
    if "total_count" in fields and isinstance(result, dict) and "_total_count" in result:
        return dict(result, total_count=result["_total_count"])
    return result


# Optional keys that Stripe leaves out, rather than sending null, when they have no value
# (its types declare them `key?: T`): by the object, or the key, that holds them.
_OMITTED_WHEN_NULL: dict[str, tuple[str, ...]] = {
    "subscription_item": ("quantity",),  # metered items
    "pricing": ("price_details",),  # an invoice item or line for a plain amount
    "items": ("quantity",),  # a schedule phase's or a portal flow's metered items
}


def public(obj: Any, holder: str = "") -> Any:
    """The wire copy: without the sandbox's private bookkeeping (keys starting with `_`), and
    without the keys Stripe omits when they are null."""
    if isinstance(obj, dict):
        out = {k: public(v, k) for k, v in obj.items() if not k.startswith("_")}
        for key in _OMITTED_WHEN_NULL.get(str(out.get("object") or holder), ()):
            if key in out and out[key] is None:
                del out[key]
        return out
    if isinstance(obj, list):
        return [public(v, holder) for v in obj]
    return obj
