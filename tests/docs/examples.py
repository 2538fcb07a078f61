"""Find the shell examples in Markdown files (see docs/examples.md for the convention).

A fenced block is an example when its info string is `sh`, `bash`, `shell` or `console`:

- `sh`, `bash`, `shell`: the block is a bash script, run as it is written;
- `console`: a transcript; a line starting with `$ ` is a command (with the lines after it while
  it ends in a backslash), every other line is output shown to the reader and is not run.

An HTML comment on the line before the fence (blank lines between are allowed) changes how
the block runs:

- `<!-- example: skip REASON -->`: not run; the reason is required and shown in the report;
- `<!-- example: server HOST:PORT -->`: a long-running command (a server): started in the
  background, ready once HOST:PORT accepts connections, stopped when the file's examples end;

Every other fence must name its language too (`text` for synopses and layouts, `json`,
`toml`, ...), so that no example hides in an unlabelled block; `problems()` lists the breaches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
DIRECTIVES = frozenset({"skip", "server"})

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*example:\s*(?P<body>.*?)\s*-->\s*$")
_ADDRESS = re.compile(r"^(?P<host>[\w.-]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Directive:
    kind: str  # skip | server
    argument: str  # the reason, or HOST:PORT for `server`
    line: int

    @property
    def address(self) -> tuple[str, int]:
        match = _ADDRESS.match(self.argument)
        if match is None:
            raise ValueError(f"line {self.line}: `server` takes HOST:PORT, "
                             f"not {self.argument!r}")
        return match.group("host"), int(match.group("port"))


@dataclass(frozen=True)
class Fence:
    """Any fenced block: its language (the info string's first word), lines and body."""

    doc: str
    language: str
    line: int  # of the opening fence, from 1
    body: str
    directive: Directive | None


@dataclass(frozen=True)
class Example:
    doc: str  # the Markdown file, relative to the repository
    number: int  # 1, 2, ... among the file's examples, in document order
    language: str
    line: int
    body: str  # the block as written (its fence's indentation removed)
    directive: Directive | None

    @property
    def id(self) -> str:
        return f"{self.doc}-{self.number}"

    @property
    def where(self) -> str:
        return f"{self.doc}, example {self.number} (the block at line {self.line})"

    @property
    def script(self) -> str:
        """What bash runs: the block itself, or a console block's commands."""
        if self.language != "console":
            return self.body
        return "\n".join(console_commands(self.body))

    @property
    def skip_reason(self) -> str | None:
        if self.directive is not None and self.directive.kind == "skip":
            return self.directive.argument
        return None


def console_commands(transcript: str) -> list[str]:
    """The commands of a console transcript: `$ ` lines and their backslash continuations."""
    commands: list[str] = []
    current: list[str] | None = None
    for line in transcript.splitlines():
        if current is not None:
            current.append(line)
        elif line.startswith("$ "):
            current = [line[2:]]
        else:
            continue  # output
        if not line.endswith("\\"):
            commands.append("\n".join(current))
            current = None
    if current is not None:
        commands.append("\n".join(current))
    return commands


def fences(path: Path, doc: str) -> list[Fence]:
    """Every fenced block of a Markdown file, with the directive written before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Fence] = []
    number = 0
    while number < len(lines):
        opening = _FENCE.match(lines[number])
        if opening is None:
            number += 1
            continue
        indent, fence = len(opening.group("indent")), opening.group("fence")
        language = (opening.group("info").strip().split() or [""])[0]
        body: list[str] = []
        end = number + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (closing is not None and closing.group("fence")[0] == fence[0]
                    and len(closing.group("fence")) >= len(fence)
                    and not closing.group("info").strip()):
                break
            text = lines[end]
            body.append(text[indent:] if text[:indent].strip() == "" else text.lstrip())
            end += 1
        found.append(Fence(doc, language, number + 1, "\n".join(body) + "\n",
                           _directive_before(lines, number)))
        number = end + 1
    return found


def _directive_before(lines: list[str], fence_index: int) -> Directive | None:
    index = fence_index - 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    if index < 0:
        return None
    match = _DIRECTIVE.match(lines[index])
    if match is None:
        return None
    kind, _, argument = match.group("body").partition(" ")
    return Directive(kind, argument.strip(), index + 1)


def examples(path: Path, doc: str) -> list[Example]:
    runnable = [f for f in fences(path, doc) if f.language in RUN_LANGUAGES]
    return [Example(f.doc, number, f.language, f.line, f.body, f.directive)
            for number, f in enumerate(runnable, start=1)]


def problems(path: Path, doc: str) -> list[str]:
    """Breaches of the convention: unlabelled fences, bad directives, empty console blocks."""
    found: list[str] = []
    for fence in fences(path, doc):
        where = f"{doc}:{fence.line}"
        if not fence.language:
            found.append(f"{where}: a fence without a language; say `sh` or `console` (run by "
                         "tests/docs) or `text`, `json`, ... (not run)")
        if fence.language in ("sh", "bash", "shell") and fence.body.startswith("$ "):
            found.append(f"{where}: `$ ` prompts in a `{fence.language}` block; a transcript "
                         "is a `console` block")
        if fence.language == "console" and not console_commands(fence.body):
            found.append(f"{where}: a `console` block without a `$ ` command")
        directive = fence.directive
        if directive is None:
            continue
        if directive.kind not in DIRECTIVES:
            found.append(f"{doc}:{directive.line}: unknown example directive {directive.kind!r} "
                         f"(known: {', '.join(sorted(DIRECTIVES))})")
        elif fence.language not in RUN_LANGUAGES:
            found.append(f"{doc}:{directive.line}: an example directive before a "
                         f"`{fence.language or 'unlabelled'}` block, which is never run")
        elif directive.kind == "server":
            try:
                directive.address  # noqa: B018 - parses HOST:PORT
            except ValueError as error:
                found.append(f"{doc}:{error}")
        elif not directive.argument:
            found.append(f"{doc}:{directive.line}: `{directive.kind}` needs a reason")
    return found
