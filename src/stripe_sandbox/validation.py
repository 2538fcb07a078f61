"""Request parameters checked against stripe-python's own declared parameter types.

`build_validator(router)` returns `validate(route, params)`, which the engine calls before each
handler (with `expand` already removed). The parameter type of a route is the TypedDict that
stripe-python's service method for the same (method, path) declares, e.g. `CustomerService.update`
→ `stripe.params.CustomerUpdateParams` for `POST /v1/customers/{customer}`.

What it checks, recursively through nested objects, lists and maps, with Stripe's wording:
- an unknown key → 400 `parameter_unknown`, "Received unknown parameter: items[0][bogus]";
- a missing `Required` key → `parameter_missing`, "Missing required param: currency.";
- integers → `parameter_invalid_integer` ("Invalid integer: abc"), booleans (only `true` and
  `false`, as Stripe) → `parameter_invalid_boolean`, decimals → `parameter_invalid_decimal`;
- enums (`Literal[...]`) → "Invalid interval: must be one of day, month, week, or year" (Stripe
  sends no code there). stripe-python types most enums as `Literal[...]|str` for forward
  compatibility; the server knows the closed list, so the literals are enforced;
- `""` unsets a parameter only where the type admits `Literal['']` (or is a plain string);
  elsewhere → `parameter_invalid_empty`, Stripe's "You passed an empty string for ...";
- an object where a scalar belongs and the reverse ("Invalid object", "Invalid array").

What it does not check: string formats and lengths, numeric ranges, currencies, ids, and rules
that span several parameters (mutually exclusive parameters, conditional requirements); those
are the handlers' job. Routes with no stripe-python params type pass unchecked: sandbox-only
endpoints and the v2 JSON endpoints. A type form it does not know is accepted as anything.

The (method, path) → params-type table is read from stripe-python's service sources once per
process, on the first validated request, so that building a `Sandbox` stays cheap; each
TypedDict's field table is compiled on first use and cached.
"""

from __future__ import annotations

import decimal
import importlib
import json
import re
import threading
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import stripe
from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject
from typing_extensions import is_typeddict

from .errors import InvalidRequestError
from .router import Route, Router

__all__ = ["build_validator", "params_type_for", "unvalidated_routes"]

Validator = Callable[[Route, dict[str, Any]], None]

# --- the route table, from stripe-python's services ------------------------------------------

_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_METHOD_SPLIT = re.compile(r"\n    (?=(?:async )?def )")
_PARAMS_ARG = re.compile(r"\bparams: (?:Optional\[\s*)?\"(\w+)\"")
_REQUEST_CALL = re.compile(r"self\._request\(\s*\"(\w+)\",\s*\"([^\"]+)\"")
_IMPORT_BLOCK = re.compile(r"from (stripe\.params[\w.]*) import \(([^)]*)\)")
_IMPORT_LINE = re.compile(r"from (stripe\.params[\w.]*) import (\w+)(?: as (\w+))?\s*$", re.M)

_table: dict[tuple[str, str], tuple[str, str]] | None = None
_table_lock = threading.Lock()


def _normalize(method: str, pattern: str) -> tuple[str, str]:
    return method.upper(), _PLACEHOLDER.sub("{}", pattern)


def _scan_service(text: str, table: dict[tuple[str, str], tuple[str, str]]) -> None:
    modules: dict[str, str] = {}
    for module, names in _IMPORT_BLOCK.findall(text):
        for name in names.replace("\n", " ").split(","):
            parts = name.split(" as ")
            if parts[0].strip():
                modules[parts[-1].strip()] = module
    for module, name, alias in _IMPORT_LINE.findall(text):
        modules[alias or name] = module
    for chunk in _METHOD_SPLIT.split(text):
        if not chunk.startswith("def "):  # async twins declare the same request
            continue
        params = _PARAMS_ARG.search(chunk)
        call = _REQUEST_CALL.search(chunk)
        if params is None or call is None or params.group(1) not in modules:
            continue
        key = _normalize(call.group(1), call.group(2))
        # The first declaration wins (one path is served by two deprecated aliases).
        table.setdefault(key, (modules[params.group(1)], params.group(1)))


def _route_table() -> dict[tuple[str, str], tuple[str, str]]:
    """(METHOD, path with `{}` placeholders) → (params module, TypedDict name), for v1."""
    global _table
    with _table_lock:
        if _table is None:
            root = Path(stripe.__file__).parent
            table: dict[tuple[str, str], tuple[str, str]] = {}
            for path in sorted(root.rglob("_*_service.py")):
                if "v2" in path.relative_to(root).parts:
                    continue
                _scan_service(path.read_text(encoding="utf-8"), table)
            _table = table
        return _table


def params_type_for(method: str, pattern: str) -> type | None:
    """The stripe-python params TypedDict for a route, or None if stripe-python has none."""
    found = _route_table().get(_normalize(method, pattern))
    if found is None:
        return None
    cls: type = getattr(importlib.import_module(found[0]), found[1])
    return cls


def unvalidated_routes(router: Router) -> list[Route]:
    """The v1 routes the validator cannot check (no stripe-python params type for them)."""
    table = _route_table()
    return [r for r in router.routes
            if r.pattern.startswith("/v1/") and _normalize(r.method, r.pattern) not in table]


# --- errors in Stripe's wording --------------------------------------------------------------


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _unknown(params: list[str]) -> InvalidRequestError:
    noun = "parameter" if len(params) == 1 else "parameters"
    return InvalidRequestError(f"Received unknown {noun}: {', '.join(params)}",
                               param=params[0], code="parameter_unknown")


def _empty(param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{param}' cannot be unset. You should remove '{param}' "
        "from your request or supply a non-empty value.",
        param=param, code="parameter_invalid_empty",
    )


def _one_of(values: Sequence[str]) -> str:
    if len(values) <= 2:
        return " or ".join(values)
    return ", ".join(values[:-1]) + ", or " + values[-1]


# --- specs: one checker per type form --------------------------------------------------------


class _Spec:
    # What a value must look like: "scalar", "dict", "list" or "any"; unions use it to report
    # the error of the alternative the caller evidently meant.
    shape = "scalar"

    def check(self, value: Any, param: str) -> None:
        raise NotImplementedError


class _Any(_Spec):
    shape = "any"

    def check(self, value: Any, param: str) -> None:
        return None


class _Str(_Spec):
    def check(self, value: Any, param: str) -> None:
        if isinstance(value, (dict, list)):
            raise InvalidRequestError(f"Invalid string: {_shown(value)}", param=param)


_INTEGER = re.compile(r"-?[0-9]+")


class _Int(_Spec):
    def check(self, value: Any, param: str) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            return
        if value == "":
            raise _empty(param)
        if not (isinstance(value, str) and _INTEGER.fullmatch(value)):
            raise InvalidRequestError(f"Invalid integer: {_shown(value)}", param=param,
                                      code="parameter_invalid_integer")


class _Bool(_Spec):
    def check(self, value: Any, param: str) -> None:
        if isinstance(value, bool) or value in ("true", "false"):
            return
        if value == "":
            raise _empty(param)
        raise InvalidRequestError(f"Invalid boolean: {_shown(value)}", param=param,
                                  code="parameter_invalid_boolean")


class _Number(_Spec):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "decimal" or "float"

    def check(self, value: Any, param: str) -> None:
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            return
        if value == "":
            raise _empty(param)
        try:
            if isinstance(value, str) and decimal.Decimal(value).is_finite():
                return
        except decimal.InvalidOperation:
            pass
        code = "parameter_invalid_decimal" if self.kind == "decimal" else None
        raise InvalidRequestError(f"Invalid {self.kind}: {_shown(value)}", param=param,
                                  code=code)


class _Enum(_Spec):
    shape = "enum"

    def __init__(self, values: list[str]) -> None:
        self.values = values
        self.allowed = frozenset(values)

    def check(self, value: Any, param: str) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if value in self.allowed:
            return
        if value == "":
            raise _empty(param)
        raise InvalidRequestError(f"Invalid {param}: must be one of {_one_of(self.values)}",
                                  param=param)


class _Emptyable(_Spec):
    """`Literal['']|T`: an empty string unsets the parameter."""

    def __init__(self, inner: _Spec) -> None:
        self.inner = inner
        self.shape = inner.shape

    def check(self, value: Any, param: str) -> None:
        if value != "":
            self.inner.check(value, param)


class _Union(_Spec):
    shape = "any"

    def __init__(self, alternatives: list[_Spec]) -> None:
        self.alternatives = alternatives

    def check(self, value: Any, param: str) -> None:
        failures: list[tuple[_Spec, InvalidRequestError]] = []
        for alternative in self.alternatives:
            try:
                alternative.check(value, param)
                return
            except InvalidRequestError as error:
                failures.append((alternative, error))
        shape = "dict" if isinstance(value, dict) else "list" if isinstance(value, list) \
            else "scalar"
        for alternative, failure in failures:
            if alternative.shape == shape:
                raise failure
        raise failures[0][1]


class _List(_Spec):
    shape = "list"

    def __init__(self, item: _Spec) -> None:
        self.item = item

    def check(self, value: Any, param: str) -> None:
        if isinstance(value, dict) and all(k.isdigit() for k in value):
            # `a[3]=x` without `a[0]`: the form decoder leaves a dict; Stripe reads a list.
            value = [value[k] for k in sorted(value, key=int)]
        if value == "":
            raise _empty(param)
        if not isinstance(value, list):
            raise InvalidRequestError("Invalid array", param=param)
        for index, item in enumerate(value):
            self.item.check(item, f"{param}[{index}]")


class _Map(_Spec):
    """A free-form `Dict[str, T]` (metadata, currency_options)."""

    shape = "dict"

    def __init__(self, item: _Spec) -> None:
        self.item = item

    def check(self, value: Any, param: str) -> None:
        if isinstance(value, list):  # numeric keys that the form decoder made a list
            value = {str(i): v for i, v in enumerate(value)}
        if value == "":
            raise _empty(param)
        if not isinstance(value, dict):
            raise InvalidRequestError("Invalid object", param=param)
        if isinstance(self.item, _Any):
            return
        for key, item in value.items():
            self.item.check(item, f"{param}[{key}]")


class _Object(_Spec):
    """A TypedDict: known keys, required keys, a checker per key (compiled on first use)."""

    shape = "dict"

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields: dict[str, _Spec] | None = None
        self.required: tuple[str, ...] = ()

    def _compile(self) -> dict[str, _Spec]:
        cls = self.cls
        inherited = RequestOptions.__annotations__
        own = {k: v for k, v in cls.__annotations__.items() if inherited.get(k) is not v}
        namespace = vars(importlib.import_module(cls.__module__))
        fields = {name: _compile(_hint(name, annotation, namespace))
                  for name, annotation in own.items()}
        self.required = tuple(k for k in sorted(getattr(cls, "__required_keys__", ()))
                              if k in fields)
        self.fields = fields
        return fields

    def check(self, value: Any, param: str) -> None:
        if value == "":
            raise _empty(param)
        if not isinstance(value, dict):
            raise InvalidRequestError("Invalid object", param=param)
        self.check_fields(value, param)

    def check_fields(self, value: dict[str, Any], prefix: str) -> None:
        fields = self.fields if self.fields is not None else self._compile()

        def name(key: str) -> str:
            return f"{prefix}[{key}]" if prefix else key

        unknown = [name(k) for k in value if k not in fields]
        if unknown:
            raise _unknown(unknown)
        for key in self.required:
            if key not in value:
                raise InvalidRequestError(f"Missing required param: {name(key)}.",
                                          param=name(key), code="parameter_missing")
        for key, item in value.items():
            if item is not None:  # JSON null: as if the key were absent
                fields[key].check(item, name(key))


# --- compiling stripe-python's annotations into specs ----------------------------------------

_ANY = _Any()
_SCALARS: dict[Any, _Spec] = {
    str: _Str(), int: _Int(), bool: _Bool(),
    decimal.Decimal: _Number("decimal"), float: _Number("float"),
}
_objects: dict[type, _Object] = {}


def _hint(name: str, annotation: Any, namespace: dict[str, Any]) -> Any:
    """Evaluate one field's annotation (forward references included) in its module."""
    holder = types.SimpleNamespace(__annotations__={name: annotation})
    try:
        return typing.get_type_hints(holder, globalns=namespace)[name]
    except Exception:  # a form that does not evaluate at runtime: accept anything there
        return Any


def _object(cls: type) -> _Object:
    spec = _objects.get(cls)
    if spec is None:
        spec = _objects[cls] = _Object(cls)
    return spec


def _compile(tp: Any) -> _Spec:
    origin = typing.get_origin(tp)
    if origin in (typing.Required, typing.NotRequired):
        return _compile(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType or origin is typing.Literal:
        return _compile_union(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if is_typeddict(tp):
        return _object(tp)
    if origin in (list, Sequence):
        args = typing.get_args(tp)
        return _List(_compile(args[0]) if args else _ANY)
    if origin in (dict, Mapping) or tp is UntypedStripeObject or origin is UntypedStripeObject:
        args = typing.get_args(tp)
        return _Map(_compile(args[-1]) if args else _ANY)
    return _ANY


def _literals(tp: Any) -> list[Any]:
    """The alternatives of a union, with nested unions and multi-value literals flattened."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return [leaf for arg in typing.get_args(tp) for leaf in _literals(arg)]
    if origin is typing.Literal:
        return [("literal", v) for v in typing.get_args(tp)]
    return [tp]


def _compile_union(tp: Any) -> _Spec:
    leaves = _literals(tp)
    values = [leaf[1] for leaf in leaves if isinstance(leaf, tuple)]
    others = [leaf for leaf in leaves if not isinstance(leaf, tuple) and leaf is not type(None)]
    emptyable = "" in values
    named = [v if isinstance(v, str) else json.dumps(v) for v in values if v != ""]
    alternatives: list[_Spec] = []
    if named:  # `Literal[...]|str` is an enum on the server: `str` is the SDK's leniency
        alternatives.append(_Enum(named))
        others = [o for o in others if o is not str]
    alternatives.extend(_compile(o) for o in others)
    if not alternatives:
        spec: _Spec = _Enum([])
    elif len(alternatives) == 1:
        spec = alternatives[0]
    else:
        spec = _Union(alternatives)
    return _Emptyable(spec) if emptyable else spec


# --- the validator the engine calls ----------------------------------------------------------

_route_specs: dict[tuple[str, str], _Object | None] = {}


def _spec_for(method: str, pattern: str) -> _Object | None:
    key = (method, pattern)
    if key not in _route_specs:
        cls = params_type_for(method, pattern) if pattern.startswith("/v1/") else None
        _route_specs[key] = _object(cls) if cls is not None and is_typeddict(cls) else None
    return _route_specs[key]


def build_validator(router: Router) -> Validator:
    """A checker for requests to `router`'s routes; cheap to build, the tables are shared."""

    def validate(route: Route, params: dict[str, Any]) -> None:
        spec = _spec_for(route.method, route.pattern)
        if spec is not None:
            spec.check_fields(params, "")

    return validate
