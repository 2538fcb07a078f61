"""Generate `stripe_types.json`: the shapes of the objects the sandbox serves, from Stripe's SDKs.

Stripe generates both official clients from its OpenAPI spec. stripe-node's TypeScript
declarations say which keys an object always carries (`key: T`), which it may leave out
(`key?: T`), which are nullable (`| null`), the closed enums (string literals), lists
(`ApiList<T>`) and expandable fields (`string | Customer`). TypeScript has one `number`, so
integer vs number comes from stripe-python's annotations of the same classes (`int`, `float`).

    python tests/sandbox/sdk_schema/generate.py [NODE_STRIPE_DIR]

reads the stripe npm package installed by `npm ci` in tests/sandbox/node (or NODE_STRIPE_DIR)
and the installed stripe-python, and writes the schema next to this file. Only the types
reachable from the resources the sandbox serves are kept; an expandable field whose object the
sandbox does not serve is kept as "an id only".
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "stripe_types.json"
NODE_STRIPE = HERE.parent / "node" / "node_modules" / "stripe"

# The `object` of every resource the sandbox serves: the schema's roots.
ROOT_OBJECTS = (
    "customer", "payment_method", "product", "price", "plan", "billing.meter",
    "billing.meter_event", "billing.meter_event_adjustment", "billing.meter_event_summary",
    "subscription", "subscription_item", "subscription_schedule", "invoice", "line_item",
    "invoiceitem", "invoice_payment", "test_helpers.test_clock", "event", "webhook_endpoint",
    "billing_portal.session", "payment_intent",
)

# --- a small reader of the declaration files ------------------------------------------------

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|([A-Za-z_$][\w$]*)"
                    r"|(\.\.\.|=>|[{}()\[\]<>;:,|&?=.*]))")


def tokenize(text: str) -> list[str]:
    text = _COMMENT.sub(" ", text)
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:  # a character the declarations of objects never need (numbers...)
            pos += 1
            continue
        tokens.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return tokens


@dataclass
class Decl:
    """An interface (members) or a type alias (type) in one file, by qualified name."""

    file: str
    qname: str
    members: dict[str, tuple[bool, Any]] = field(default_factory=dict)  # name → (optional, type)
    alias: Any = None
    index: Any = None  # `[key: string]: T`
    extends: list[Any] = field(default_factory=list)


@dataclass
class FileScope:
    path: str
    decls: dict[str, Decl] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local → (file, name)
    star: dict[str, str] = field(default_factory=dict)  # `import * as NS` → file
    reexports: dict[str, tuple[str, str]] = field(default_factory=dict)


class Parser:
    def __init__(self, tokens: list[str], scope: FileScope, base: Path, root: Path) -> None:
        self.t = tokens
        self.i = 0
        self.scope = scope
        self.base = base
        self.root = root

    def peek(self, k: int = 0) -> str:
        return self.t[self.i + k] if self.i + k < len(self.t) else ""

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if expected is not None and tok != expected:
            raise SyntaxError(f"{self.scope.path}: expected {expected!r}, got {tok!r} "
                              f"near {' '.join(self.t[self.i - 5:self.i + 5])}")
        self.i += 1
        return tok

    def skip_balanced(self) -> None:
        depth = 0
        while self.i < len(self.t):
            tok = self.take()
            if tok in "{([":
                depth += 1
            elif tok in "})]":
                depth -= 1
                if depth == 0:
                    return

    def skip_statement(self) -> None:
        depth = 0
        while self.i < len(self.t):
            tok = self.peek()
            if tok in ("{", "(", "["):
                self.skip_balanced()
                if depth == 0 and self.peek() != ";" and self.peek() not in ("|", "&", "["):
                    return
                continue
            self.take()
            if tok == ";" and depth == 0:
                return

    def module(self, target: str) -> str:
        rel = (self.base / target.strip("'")).resolve()
        return str(rel.relative_to(self.root)).removesuffix(".js")

    def parse_file(self) -> None:
        while self.i < len(self.t):
            self.statement([])

    def statement(self, namespace: list[str]) -> None:
        tok = self.peek()
        if tok in ("export", "declare"):
            self.take()
            if self.peek() == "{":  # export { A, B } from '...'
                names = self.name_list()
                if self.peek() == "from":
                    self.take()
                    source = self.module(self.take())
                    for local, remote in names:
                        self.scope.reexports[local] = (source, remote)
                self.skip_statement()
                return
            return self.statement(namespace)
        if tok == "import":
            self.take()
            if self.peek() == "*":
                self.take()
                self.take("as")
                alias = self.take()
                self.take("from")
                self.scope.star[alias] = self.module(self.take())
            elif self.peek() == "{":
                names = self.name_list()
                self.take("from")
                source = self.module(self.take())
                for local, remote in names:
                    self.scope.imports[local] = (source, remote)
            self.skip_statement()
            return
        if tok == "interface":
            self.take()
            name = self.take()
            self.interface(namespace + [name])
            return
        if tok == "namespace":
            self.take()
            name = self.take()
            while self.peek() == ".":
                self.take()
                name += "." + self.take()
            self.take("{")
            inner = namespace + name.split(".")
            while self.peek() != "}":
                self.statement(inner)
            self.take("}")
            return
        if tok == "type":
            self.take()
            name = self.take()
            if self.peek() == "<":
                self.skip_generics()
            self.take("=")
            decl = self.decl(namespace + [name])
            decl.alias = self.type_expr()
            if self.peek() == ";":
                self.take()
            return
        self.skip_statement()

    def skip_generics(self) -> None:
        depth = 0
        while True:
            tok = self.take()
            depth += tok == "<"
            depth -= tok == ">"
            if depth == 0:
                return

    def name_list(self) -> list[tuple[str, str]]:
        self.take("{")
        names: list[tuple[str, str]] = []
        while self.peek() != "}":
            if self.peek() == "type":
                self.take()
            remote = self.take()
            local = remote
            if self.peek() == "as":
                self.take()
                local = self.take()
            names.append((local, remote))
            if self.peek() == ",":
                self.take()
        self.take("}")
        return names

    def decl(self, qname: list[str]) -> Decl:
        key = ".".join(qname)
        decl = self.scope.decls.get(key)
        if decl is None:
            decl = self.scope.decls[key] = Decl(self.scope.path, key)
        return decl

    def interface(self, qname: list[str]) -> None:
        decl = self.decl(qname)
        if self.peek() == "<":
            self.skip_generics()
        if self.peek() == "extends":
            self.take()
            while self.peek() != "{":
                decl.extends.append(self.type_primary())
                if self.peek() == ",":
                    self.take()
        decl.members.update(self.object_body(decl))

    def object_body(self, decl: Decl | None = None) -> dict[str, tuple[bool, Any]]:
        members: dict[str, tuple[bool, Any]] = {}
        self.take("{")
        while self.peek() != "}":
            if self.peek() == "[":  # [key: string]: T
                self.take()
                self.take()
                self.take(":")
                self.type_expr()
                self.take("]")
                self.take(":")
                index = self.type_expr()
                if decl is not None:
                    decl.index = index
                else:
                    members["[index]"] = (True, index)
            else:
                if self.peek() == "readonly":
                    self.take()
                name = self.take()
                if self.peek() == "(" or self.peek() == "<":  # a method
                    self.skip_statement()
                    continue
                optional = False
                if self.peek() == "?":
                    self.take()
                    optional = True
                self.take(":")
                members[name] = (optional, self.type_expr())
            if self.peek() in (";", ","):
                self.take()
        self.take("}")
        return members

    def type_expr(self) -> Any:
        if self.peek() == "|":
            self.take()
        parts = [self.type_intersection()]
        while self.peek() == "|":
            self.take()
            parts.append(self.type_intersection())
        return parts[0] if len(parts) == 1 else ("union", parts)

    def type_intersection(self) -> Any:
        parts = [self.type_postfix()]
        while self.peek() == "&":
            self.take()
            parts.append(self.type_postfix())
        return parts[0] if len(parts) == 1 else ("intersection", parts)

    def type_postfix(self) -> Any:
        tp = self.type_primary()
        while self.peek() == "[" and self.peek(1) == "]":
            self.take()
            self.take()
            tp = ("generic", "Array", [tp])
        return tp

    def type_primary(self) -> Any:
        tok = self.peek()
        if tok.startswith("'"):
            self.take()
            return ("literal", tok[1:-1])
        if tok == "(":
            self.take()
            inner = self.type_expr()
            self.take(")")
            if self.peek() == "=>":  # a function type
                self.take()
                self.type_expr()
                return ("any",)
            return inner
        if tok == "{":
            return ("object", self.object_body())
        name = self.take()
        while self.peek() == ".":
            self.take()
            name += "." + self.take()
        if self.peek() == "<":
            self.take()
            args = [self.type_expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.type_expr())
            self.take(">")
            return ("generic", name, args)
        return ("ref", name)


def read_package(package: Path) -> dict[str, FileScope]:
    root = package / "cjs"
    files: dict[str, FileScope] = {}
    for path in sorted(root.rglob("*.d.ts")):
        rel = str(path.relative_to(root)).removesuffix(".d.ts")
        # The objects' declarations (resources/*.d.ts and the package's own cjs/shared.d.ts);
        # the client's machinery (Decimal, requests) is skipped.
        if not (rel.startswith("resources/") or rel == "shared") or "/V2" in rel:
            continue
        scope = FileScope(rel)
        Parser(tokenize(path.read_text(encoding="utf-8")), scope, path.parent, root).parse_file()
        files[rel] = scope
    return files


# --- resolving names and writing the schema ---------------------------------------------------


class Builder:
    def __init__(self, files: dict[str, FileScope]) -> None:
        self.files = files
        self.types: dict[str, Any] = {}
        self.roots: dict[str, str] = {}  # object name → type id
        self.pending: list[Decl] = []

    @staticmethod
    def type_id(decl: Decl) -> str:
        return f"{decl.file.removeprefix('resources/')}:{decl.qname}"

    def lookup(self, file: str, name: str) -> Decl | None:
        scope = self.files.get(file)
        if scope is None:
            return None
        if name in scope.decls:
            return scope.decls[name]
        head, _, rest = name.partition(".")
        for table in (scope.imports, scope.reexports):
            if head in table:
                source, remote = table[head]
                found = self.lookup(source, remote + ("." + rest if rest else ""))
                if found is None and rest:
                    # `import { Billing } from './Billing/index.js'`: the index's namespace
                    # re-exports what the index imports.
                    found = self.lookup(source, rest)
                return found
        if head in scope.star and rest:
            return self.lookup(scope.star[head], rest)
        return None

    def resolve(self, decl: Decl, name: str) -> Decl | None:
        context = decl.qname.split(".")
        for cut in range(len(context), -1, -1):
            found = self.lookup(decl.file, ".".join(context[:cut] + [name]))
            if found is not None:
                return found
        return None

    def object_of(self, decl: Decl) -> str | None:
        entry = decl.members.get("object")
        if entry and entry[1][0] == "literal":
            return str(entry[1][1])
        return None

    def find_roots(self) -> None:
        for scope in self.files.values():
            for decl in scope.decls.values():
                kind = self.object_of(decl)
                if kind in ROOT_OBJECTS and not decl.qname.startswith("Deleted") and \
                        kind != "event":
                    self.roots.setdefault(kind, self.type_id(decl))
                    self.want(decl)
        events = self.files["resources/Events"].decls
        base = events["EventBase"]
        self.roots["event"] = self.type_id(base)
        self.want(base)
        self.event_objects: dict[str, str] = {}
        for decl in events.values():
            kind = decl.members.get("type")
            data = decl.members.get("data")
            if not (kind and data and kind[1][0] == "literal" and decl.qname.endswith("Event")):
                continue
            data_decl = self.resolve(decl, data[1][1])
            obj = data_decl.members.get("object") if data_decl else None
            if obj is None or obj[1][0] != "ref":
                continue
            target = self.resolve(data_decl, obj[1][1])  # type: ignore[arg-type]
            if target is not None and self.type_id(target) in self.roots.values():
                self.event_objects[str(kind[1][1])] = self.type_id(target)

    def want(self, decl: Decl) -> str:
        tid = self.type_id(decl)
        if tid not in self.types:
            self.types[tid] = None
            self.pending.append(decl)
        return tid

    def build(self) -> None:
        self.find_roots()
        while self.pending:
            decl = self.pending.pop()
            self.types[self.type_id(decl)] = self.describe(decl)

    def describe(self, decl: Decl) -> dict[str, Any]:
        if decl.alias is not None and not decl.members:
            return {"alias": self.convert(decl, decl.alias, decl.qname)}
        fields: dict[str, Any] = {}
        for parent in decl.extends:
            base = self.resolve(decl, parent[1]) if parent[0] == "ref" else None
            if base is not None:
                fields.update(self.describe(base)["fields"])
        for name, (optional, tp) in decl.members.items():
            spec = self.convert(decl, tp, f"{decl.qname}.{name}")
            spec["required"] = not optional
            fields[name] = spec
        out: dict[str, Any] = {"fields": fields}
        if decl.index is not None:
            out["additional"] = self.convert(decl, decl.index, decl.qname + "[]")
        kind = self.object_of(decl)
        if kind:
            out["object"] = kind
        return out

    def convert(self, decl: Decl, tp: Any, where: str) -> dict[str, Any]:
        """A type expression as {"nullable", "types": [alternatives]}."""
        alternatives = tp[1] if tp[0] == "union" else [tp]
        nullable = any(a == ("ref", "null") for a in alternatives)
        literals = [a[1] for a in alternatives if a[0] == "literal"]
        refs = [a for a in alternatives if a != ("ref", "null") and a[0] != "literal"
                and a != ("ref", "OtherString")]
        out: list[dict[str, Any]] = []
        if literals:
            out.append({"enum": sorted(literals)})
        objects = [r for r in refs if r[0] == "ref" and r[1] not in _SCALARS]
        has_string = ("ref", "string") in refs
        for ref in refs:
            if ref[0] == "ref" and ref[1] in _SCALARS:
                if ref[1] == "string" and objects:
                    continue  # `string | Customer`: an expandable id, below
                out.append({"kind": self.number_kind(decl, where) if ref[1] == "number"
                            else _SCALARS[ref[1]]})
            elif ref[0] == "ref":
                out.append(self.reference(decl, ref[1], where, expandable=has_string))
            elif ref[0] == "generic":
                out.append(self.generic(decl, ref, where))
            elif ref[0] == "object":
                out.append({"kind": "map"})
            else:
                out.append({"kind": "any"})
        if has_string and objects:
            out.insert(0, {"kind": "id"})
        return {"nullable": nullable, "types": out}

    def reference(self, decl: Decl, name: str, where: str, expandable: bool) -> dict[str, Any]:
        if name in ("Decimal",):
            return {"kind": "decimal"}
        if name in ("Metadata",):
            return {"kind": "map", "values": "string"}
        target = self.resolve(decl, name)
        if target is None:
            return {"kind": "any", "unresolved": name}
        kind = self.object_of(target)
        if expandable and kind not in ROOT_OBJECTS:
            # An object the sandbox does not serve: only its id may appear.
            return {"kind": "unserved", "object": kind or name}
        if target.alias is not None and not target.members:
            inner = self.convert(target, target.alias, where)
            if len(inner["types"]) == 1 and not inner["nullable"]:
                return dict(inner["types"][0])
            return {"kind": "union", **inner}
        return {"kind": "ref", "ref": self.want(target)}

    def generic(self, decl: Decl, tp: Any, where: str) -> dict[str, Any]:
        _, name, args = tp
        if name in ("Array", "ApiList", "ApiSearchResult"):
            items = self.convert(decl, args[0], where + "[]")
            return {"kind": "array" if name == "Array" else "list", "items": items}
        if name in ("Partial", "Record"):
            return {"kind": "map"}
        return {"kind": "any", "unresolved": name}

    def number_kind(self, decl: Decl, where: str) -> str:
        """integer or number, as stripe-python annotates the same field of the same class
        (found through the `object` of the resource the declaration belongs to)."""
        root = self.lookup(decl.file, decl.qname.split(".")[0])
        kind = self.object_of(root) if root is not None else None
        annotation = python_annotation(kind, where) if kind else None
        text = str(annotation)
        if annotation is None or re.search(r"\bfloat\b", text):
            return "number"
        return "integer" if re.search(r"\bint\b", text) else "number"


_SCALARS = {"string": "string", "number": "number", "boolean": "boolean", "true": "boolean",
            "false": "boolean", "void": "boolean", "any": "any", "unknown": "any"}


def python_annotation(kind: str, where: str) -> Any:
    """stripe-python's annotation of `Type.Nested.field` in the class of the object `kind`."""
    from stripe._object_classes import get_object_class

    try:
        cls: Any = get_object_class("V1", kind)
    except (KeyError, ValueError):
        return None
    parts = where.replace("[]", "").split(".")
    for part in parts[1:-1]:
        cls = getattr(cls, part, None)
        if cls is None:
            return None
    for klass in getattr(cls, "__mro__", ()):
        annotations = vars(klass).get("__annotations__", {})
        if parts[-1] in annotations:
            return annotations[parts[-1]]
    return None


def generate(package: Path = NODE_STRIPE) -> dict[str, Any]:
    import stripe

    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    api = re.search(r"ApiVersion = \"([^\"]+)\"",
                    (package / "cjs" / "apiVersion.d.ts").read_text(encoding="utf-8"))
    builder = Builder(read_package(package))
    builder.build()
    return {
        "provenance": {
            "generator": "tests/sandbox/sdk_schema/generate.py",
            "stripe-node": meta["version"],
            "stripe-python": stripe.VERSION,
            "api_version": api.group(1) if api else None,
            "licence": "Derived from Stripe's SDKs (stripe-node, stripe-python), MIT licence: "
                       "see LICENSE.stripe-node and LICENSE.stripe-python next to this file.",
        },
        "roots": dict(sorted(builder.roots.items())),
        "events": dict(sorted(builder.event_objects.items())),
        "types": dict(sorted(builder.types.items())),
    }


def render(schema: dict[str, Any]) -> str:
    """One type per line: small, and a regenerated file diffs type by type."""
    lines = ["{"]
    for n, (section, table) in enumerate(schema.items()):
        lines.append(f" {json.dumps(section)}: {{")
        for i, (key, value) in enumerate(table.items()):
            comma = "," if i < len(table) - 1 else ""
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}{comma}")
        lines.append(" }" + ("," if n < len(schema) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    package = Path(argv[1]) if len(argv) > 1 else NODE_STRIPE
    if not (package / "package.json").is_file():
        print(f"no stripe npm package at {package}: run `npm ci` in tests/sandbox/node",
              file=sys.stderr)
        return 2
    text = render(generate(package))
    OUTPUT.write_text(text, encoding="utf-8")
    schema = json.loads(text)
    print(f"wrote {OUTPUT.name}: {len(schema['types'])} types, {len(schema['roots'])} roots, "
          f"{len(schema['events'])} event types")
    return 0


if __name__ == "__main__":

    sys.exit(main(sys.argv))
