"""Parse a Dockerfile the way docker does: parser directives (`# escape=`), comments, line
continuations with the escape character, the exec (JSON) and shell forms, builder flags.

Every error is an InvalidInput naming the file and line. Nothing is expanded here: variables are
substituted when a step runs (berth.image.shellwords), with the variables in force at that step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from berth.errors import InvalidInput
from berth.image.shellwords import split_words

INSTRUCTIONS = ("FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "LABEL",
                "EXPOSE", "VOLUME", "STOPSIGNAL", "SHELL", "ONBUILD", "HEALTHCHECK", "MAINTAINER")
# which flags each instruction takes (docker's classic builder)
FLAGS = {"FROM": {"platform"}, "COPY": {"chown", "from"}, "ADD": {"chown"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "retries"}}
NOT_ONBUILD = ("ONBUILD", "FROM", "MAINTAINER")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass
class Instruction:
    line: int
    name: str  # upper case
    original: str  # the instruction's text, continuations joined (what ONBUILD records)
    args: list[str] = field(default_factory=list)  # words, the JSON list, or [text] for shell form
    json_form: bool = False
    flags: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # ENV / LABEL, unprocessed
    trigger: Instruction | None = None  # ONBUILD's instruction
    escape: str = "\\"

    @property
    def text(self) -> str:
        return self.original.split(None, 1)[1] if len(self.original.split(None, 1)) > 1 else ""


@dataclass
class Dockerfile:
    path: str
    escape: str
    instructions: list[Instruction]


def decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InvalidInput(f"{path} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def _directives(lines: list[str], path: str) -> str:
    escape = "\\"
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        m = _DIRECTIVE.match(line)
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in seen:
            raise InvalidInput(f"{path} line {n}: only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise InvalidInput(f"{path} line {n}: invalid escape token {value!r}: must be ` or \\")
            escape = value
    return escape


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """The line without a trailing escape character (and the whitespace after it); whether the
    instruction continues on the next line."""
    stripped = line.rstrip()
    if stripped.endswith(escape):
        return stripped[:-1], True
    return line, False


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    lines = text.splitlines()
    escape = _directives(lines, path)
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        start = i
        first = raw.lstrip()
        if not first or first.startswith("#"):
            continue
        joined, more = _continues(first, escape)
        while more and i < len(lines):
            nxt = lines[i]
            i += 1
            if nxt.lstrip().startswith("#") or not nxt.strip():
                continue
            piece, more = _continues(nxt, escape)
            joined += piece
        if not joined.strip():
            continue
        out.append(parse_line(joined.strip(), start, path, escape))
    if not out:
        raise InvalidInput(f"{path}: the file contains no instructions")
    return Dockerfile(path, escape, out)


def _flags(rest: str, name: str, where: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    allowed = FLAGS.get(name, set())
    while rest.startswith("--") and allowed:
        word, _, after = rest.partition(" ")
        key, sep, value = word[2:].partition("=")
        if key not in allowed:
            raise InvalidInput(f"{where}: unknown flag: --{key} ({name} takes "
                               f"{', '.join('--' + f for f in sorted(allowed))})")
        if not sep:
            raise InvalidInput(f"{where}: --{key} needs a value (--{key}=VALUE)")
        if key in flags:
            raise InvalidInput(f"{where}: duplicate flag --{key}")
        flags[key] = value
        rest = after.lstrip()
    return flags, rest


def _json_list(rest: str) -> list[str] | None:
    """The exec form when rest is a JSON array of strings, else None (the shell form)."""
    if not rest.startswith("["):
        return None
    try:
        parsed = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        return None
    return parsed


def _pairs(rest: str, name: str, where: str, escape: str) -> list[tuple[str, str]]:
    words = split_words(rest, escape)
    if not words:
        raise InvalidInput(f"{where}: {name} requires at least one argument")
    if "=" not in words[0]:
        # the old form: NAME VALUE (the value is the rest of the line)
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidInput(f"{where}: {name} {parts[0]} needs a value ({name} KEY=VALUE or {name} KEY VALUE)")
        return [(parts[0], parts[1].strip())]
    pairs = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep:
            raise InvalidInput(f"{where}: {name} {w!r} has no '=' (every word must be KEY=VALUE)")
        if not k:
            raise InvalidInput(f"{where}: {name} names can not be blank")
        pairs.append((k, v))
    return pairs


def parse_line(line: str, n: int, path: str, escape: str = "\\") -> Instruction:
    """One instruction (its continuations already joined)."""
    where = f"{path} line {n}"
    word, _, rest = line.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    name = word.upper()
    rest = rest.strip()
    if name not in INSTRUCTIONS:
        raise InvalidInput(f"{where}: unknown instruction: {word[:40]}")
    ins = Instruction(n, name, line, escape=escape)
    ins.flags, rest = _flags(rest, name, where)
    if not rest and name not in ("CMD", "ENTRYPOINT"):
        raise InvalidInput(f"{where}: {name} requires at least one argument")
    if name in ("RUN", "CMD", "ENTRYPOINT"):
        listed = _json_list(rest)
        ins.json_form = listed is not None
        ins.args = listed if listed is not None else [rest]
    elif name == "SHELL":
        listed = _json_list(rest)
        if not listed:
            raise InvalidInput(f"{where}: SHELL requires the arguments to be a JSON array of strings, "
                               "e.g. SHELL [\"/bin/sh\", \"-c\"]")
        ins.json_form, ins.args = True, listed
    elif name in ("COPY", "ADD", "VOLUME"):
        listed = _json_list(rest)
        ins.json_form = listed is not None
        ins.args = listed if listed is not None else rest.split()
        if name != "VOLUME" and len(ins.args) < 2:
            raise InvalidInput(f"{where}: {name} requires at least two arguments (SOURCE... DEST), got {rest!r}")
    elif name in ("ENV", "LABEL"):
        ins.pairs = _pairs(rest, name, where, escape)
    elif name == "FROM":
        ins.args = rest.split()
        if len(ins.args) not in (1, 3) or (len(ins.args) == 3 and ins.args[1].lower() != "as"):
            raise InvalidInput(f"{where}: FROM takes IMAGE [AS NAME], not {rest!r}")
    elif name in ("WORKDIR", "MAINTAINER"):
        ins.args = [rest]
    elif name in ("USER", "STOPSIGNAL"):
        ins.args = rest.split()
        if len(ins.args) != 1:
            raise InvalidInput(f"{where}: {name} requires exactly one argument, got {rest!r}")
    elif name in ("ARG", "EXPOSE"):
        ins.args = rest.split()
    elif name == "ONBUILD":
        trigger = parse_line(rest, n, path, escape)
        if trigger.name in NOT_ONBUILD:
            raise InvalidInput(f"{where}: {trigger.name} isn't allowed as an ONBUILD trigger")
        ins.trigger, ins.args = trigger, [rest]
    elif name == "HEALTHCHECK":
        kind, _, cmd = rest.partition(" ")
        kind = kind.upper()
        cmd = cmd.strip()
        if kind == "NONE":
            if cmd or ins.flags:
                raise InvalidInput(f"{where}: HEALTHCHECK NONE takes no other arguments")
            ins.args = ["NONE"]
        elif kind == "CMD":
            if not cmd:
                raise InvalidInput(f"{where}: HEALTHCHECK CMD needs a command")
            listed = _json_list(cmd)
            ins.json_form = listed is not None
            ins.args = ["CMD", *listed] if listed is not None else ["CMD-SHELL", cmd]
        else:
            raise InvalidInput(f"{where}: HEALTHCHECK takes NONE or [OPTIONS] CMD command, not {kind!r}")
    return ins
