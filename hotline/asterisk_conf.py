"""Read Asterisk ``.conf`` files (and the dialplan in ``extensions.conf``) the way Asterisk does.

Hotline ships ``dialplan/*.conf`` and checks them in its tests and tools: every context
a ``Goto`` names exists, priorities run 1, 2, 3..., every queue a flow uses is defined.
pyst2's ``asterisk.config`` was the first choice, but it refuses ``[context](template)``
and ``#include`` lines (ParseError), cuts values at an escaped ``\\;``, and knows no
``;-- block comments --;``, all of which real configs use; hence this small parser.

Sans-I/O: ``parse_conf`` reads text; ``load_conf`` adds the file system (``#include``).
Errors name the file and line (``ConfError``), so an admin can fix the file.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ConfError",
    "ConfFile",
    "ConfItem",
    "ConfSection",
    "Context",
    "Dialplan",
    "Extension",
    "Priority",
    "load_conf",
    "parse_application",
    "parse_conf",
    "parse_dialplan",
    "split_app_args",
]


class ConfError(ValueError):
    """A line Asterisk would refuse or misread: the config file's fault."""

    def __init__(self, file: str, line: int, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}")


@dataclass(frozen=True)
class ConfItem:
    """``name = value`` or ``name => value`` (Asterisk treats both alike; ``=>`` marks objects)."""

    name: str
    value: str
    operator: str
    file: str
    line: int


@dataclass
class ConfSection:
    """``[name]`` or ``[name](!)`` (a template) or ``[name](tpl1,tpl2)`` (inherits them)."""

    name: str
    file: str
    line: int
    is_template: bool = False
    templates: tuple[str, ...] = ()
    items: list[ConfItem] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value of ``name`` (later lines win, as in Asterisk), or ``default``."""
        values = self.getall(name)
        return values[-1] if values else default

    def getall(self, name: str) -> list[str]:
        return [item.value for item in self.items if item.name.lower() == name.lower()]


@dataclass
class ConfFile:
    path: str
    sections: list[ConfSection] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)   # every file pulled in by #include

    def section_names(self, *, templates: bool = False) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.sections:
            if templates or not s.is_template:
                seen.setdefault(s.name, None)
        return list(seen)

    def section(self, name: str) -> ConfSection | None:
        """The section ``name`` with its templates' items first (several ``[name]`` blocks merged)."""
        blocks = [s for s in self.sections if s.name == name]
        if not blocks:
            return None
        merged = ConfSection(name, blocks[0].file, blocks[0].line, blocks[0].is_template,
                             tuple(t for b in blocks for t in b.templates))
        for block in blocks:
            for template in block.templates:
                base = self.section(template)
                if base is not None:
                    merged.items.extend(base.items)
            merged.items.extend(block.items)
        return merged

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.sections)


_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\]\s*(?:\((?P<opts>[^)]*)\))?\s*$")
_DIRECTIVE = re.compile(r"^#\s*(?P<word>include|tryinclude|exec)\s+(?P<arg>.+?)\s*$", re.IGNORECASE)


def _strip_comments(raw: str, in_block: int) -> tuple[str, int]:
    """The line without comments, and the block-comment depth after it.

    ``;`` starts a comment unless written ``\\;`` (kept as ``;``); ``;--`` opens a block
    comment closed by ``--;``, and blocks nest, as in Asterisk's config.c.
    """
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        if in_block:
            if raw.startswith("--;", i):
                in_block -= 1
                i += 3
            elif raw.startswith(";--", i):
                in_block += 1
                i += 3
            else:
                i += 1
            continue
        ch = raw[i]
        if ch == "\\" and raw.startswith(";", i + 1):
            out.append(";")
            i += 2
        elif raw.startswith(";--", i):
            in_block += 1
            i += 3
        elif ch == ";":
            break
        else:
            out.append(ch)
            i += 1
    return "".join(out), in_block


IncludeLoader = Callable[[str, str], "tuple[str, str] | None"]


def parse_conf(text: str, filename: str = "<conf>", *, include: IncludeLoader | None = None,
               _into: ConfFile | None = None, _current: list | None = None, _depth: int = 0) -> ConfFile:
    """Parse config ``text``. ``include(name, from_file)`` returns (path, text) of an
    ``#include``d file, or None if it does not exist; without it, includes are only listed."""
    conf = _into if _into is not None else ConfFile(filename)
    current: list[ConfSection | None] = _current if _current is not None else [None]
    if _depth > 10:
        raise ConfError(filename, 1, "#include nested more than 10 deep (a loop?)")
    depth = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line, depth = _strip_comments(raw, depth)
        line = line.strip()
        if not line:
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            word, arg = directive.group("word").lower(), directive.group("arg").strip().strip('"<>')
            if word == "exec":
                raise ConfError(filename, number, "#exec runs a program from the config: not allowed here")
            conf.includes.append(arg)
            if include is not None:
                found = include(arg, filename)
                if found is None and word == "include":
                    raise ConfError(filename, number, f"#include {arg}: no such file")
                if found is not None:
                    parse_conf(found[1], found[0], include=include, _into=conf, _current=current,
                               _depth=_depth + 1)
            continue
        if line.startswith("["):
            m = _SECTION.match(line)
            if not m:
                raise ConfError(filename, number, f"bad section header {line!r}: write [name] or [name](template)")
            opts = [o.strip() for o in (m.group("opts") or "").split(",") if o.strip()]
            section = ConfSection(m.group("name").strip(), filename, number,
                                  is_template="!" in opts,
                                  templates=tuple(o for o in opts if o not in ("!", "+")))
            for template in section.templates:
                if template not in conf:
                    raise ConfError(filename, number, f"[{section.name}] inherits unknown template '{template}'")
            conf.sections.append(section)
            current[0] = section
            continue
        if current[0] is None:
            raise ConfError(filename, number, f"{line!r} is outside any [section]")
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfError(filename, number, f"{line!r}: expected 'name = value' or 'name => value'")
        operator = "=>" if value.startswith(">") else "="
        if operator == "=>":
            value = value[1:]
        current[0].items.append(ConfItem(name.strip(), value.strip(), operator, filename, number))
    if depth and _into is None:
        raise ConfError(filename, len(text.splitlines()), "block comment ';--' never closed with '--;'")
    return conf


def load_conf(path: str | Path) -> ConfFile:
    """Parse the file at ``path``, following ``#include`` relative to its directory."""
    path = Path(path)

    def include(name: str, from_file: str) -> tuple[str, str] | None:
        target = Path(name) if Path(name).is_absolute() else Path(from_file).parent / name
        if not target.is_file():
            return None
        return str(target), target.read_text(encoding="utf-8")

    return parse_conf(path.read_text(encoding="utf-8"), str(path), include=include)


# ---------------------------------------------------------------- the dialplan

@dataclass(frozen=True)
class Priority:
    """One dialplan step: ``exten => 100,2(label),Dial(PJSIP/100,20)``."""

    number: int
    label: str | None
    app: str
    args: tuple[str, ...]
    data: str          # the raw text between the application's parentheses
    file: str
    line: int


@dataclass
class Extension:
    name: str
    priorities: list[Priority] = field(default_factory=list)
    hint: str | None = None

    def numbers(self) -> list[int]:
        return [p.number for p in self.priorities]


@dataclass
class Context:
    name: str
    extensions: dict[str, Extension] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    switches: list[str] = field(default_factory=list)

    def find(self, exten: str) -> Extension | None:
        return self.extensions.get(exten)


@dataclass
class Dialplan:
    globals: dict[str, str]
    contexts: dict[str, Context]

    def priorities(self) -> Iterator[tuple[Context, Extension, Priority]]:
        for context in self.contexts.values():
            for extension in context.extensions.values():
                for priority in extension.priorities:
                    yield context, extension, priority


_PRIORITY = re.compile(r"^(?P<num>\d+|n|hint)(?:\+(?P<plus>\d+))?(?:\((?P<label>[A-Za-z0-9_-]+)\))?$")
_APP = re.compile(r"^(?P<app>[A-Za-z][A-Za-z0-9_]*)\s*(?:\((?P<data>.*)\))?$", re.DOTALL)
_NON_CONTEXT_SECTIONS = frozenset({"general", "globals"})


def split_app_args(data: str) -> tuple[str, ...]:
    """Split application data on commas outside ``()``, ``[]``, ``{}`` and double quotes.

    ``Set(X=${IF($[${A}=1]?a:b)}),y`` -> ``("Set(X=${IF($[${A}=1]?a:b)})", "y")``; ``\\,`` stays.
    """
    args, current, stack, quoted, i = [], [], [], False, 0
    pairs = {"(": ")", "[": "]", "{": "}"}
    while i < len(data):
        ch = data[i]
        if ch == "\\" and i + 1 < len(data):
            current.append(data[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in pairs:
            stack.append(pairs[ch])
        elif not quoted and stack and ch == stack[-1]:
            stack.pop()
        elif ch == "," and not stack and not quoted:
            args.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    args.append("".join(current))
    return tuple(a.strip() for a in args)


def parse_application(text: str) -> tuple[str, str]:
    """``Dial(PJSIP/1,20)`` -> ``("Dial", "PJSIP/1,20")``; ``Answer`` -> ``("Answer", "")``."""
    m = _APP.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an application call like App(args)")
    return m.group("app"), (m.group("data") or "")


def parse_dialplan(conf: ConfFile) -> Dialplan:
    """The contexts of an ``extensions.conf`` with every priority numbered as Asterisk does.

    ``n`` is the previous priority of the same extension plus one; ``same =>`` continues
    the extension of the line before; a bad line is a ``ConfError`` with file:line.
    """
    globals_section = conf.section("globals")
    globals_ = {i.name: i.value for i in globals_section.items} if globals_section else {}
    contexts: dict[str, Context] = {}
    for name in conf.section_names():
        if name.lower() in _NON_CONTEXT_SECTIONS:
            continue
        section = conf.section(name)
        context = contexts.setdefault(name, Context(name))
        last: Extension | None = None
        for item in section.items:
            key = item.name.lower()
            if key == "include":
                context.includes.append(item.value.split(",")[0].strip())
                continue
            if key == "switch":
                context.switches.append(item.value)
                continue
            if key not in ("exten", "same"):
                raise ConfError(item.file, item.line, f"unknown dialplan line '{item.name}' in [{name}]")
            parts = [p.strip() for p in item.value.split(",", 2 if key == "exten" else 1)]
            if key == "exten":
                if len(parts) < 3:
                    raise ConfError(item.file, item.line, "write exten => name,priority,Application(args)")
                exten_name, prio_text, app_text = parts
                last = context.extensions.setdefault(exten_name, Extension(exten_name))
            else:
                if last is None:
                    raise ConfError(item.file, item.line, "'same =>' before any 'exten =>' in this context")
                if len(parts) < 2:
                    raise ConfError(item.file, item.line, "write same => priority,Application(args)")
                prio_text, app_text = parts
            m = _PRIORITY.match(prio_text)
            if not m:
                raise ConfError(item.file, item.line, f"bad priority {prio_text!r}: use 1, n or n(label)")
            if m.group("num") == "hint":
                last.hint = app_text
                continue
            previous = last.priorities[-1].number if last.priorities else 0
            if m.group("num") == "n":
                number = previous + 1 + int(m.group("plus") or 0)
            else:
                number = int(m.group("num")) + int(m.group("plus") or 0)
            if number in last.numbers():
                raise ConfError(item.file, item.line, f"priority {number} of '{last.name}' in [{name}] "
                                                      f"is defined twice")
            try:
                app, data = parse_application(app_text)
            except ValueError as exc:
                raise ConfError(item.file, item.line, str(exc)) from None
            last.priorities.append(Priority(number, m.group("label"), app, split_app_args(data) if data else (),
                                            data, item.file, item.line))
    return Dialplan(globals_, contexts)
