"""Go text/template, the subset docker users write in `--format` and `inspect -f`.

Actions: `{{.Field.Path}}`, `{{$}}`, `{{$var}}`, `{{$v := pipeline}}`, pipelines with `|`,
parenthesised pipelines, `{{if}}`/`{{else if}}`/`{{else}}`/`{{end}}`, `{{range}}` (with
`$i, $e :=`, and `{{else}}`), `{{with}}`, comments `{{/* */}}` and the trim markers `{{-`/`-}}`.
Functions: Go's builtins (and, or, not, len, index, slice, print, printf, println, eq, ne, lt, le,
gt, ge) and docker's (json, join, split, lower, upper, title, pad, truncate).
Errors read like Go's: "template: :LINE: ..." when parsing, "template: :LINE:COL: executing ..."
when running; the CLI prefixes parsing errors with "template parsing error: " as docker does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from berth.errors import InvalidInput
from berth.record import Factory, Record


class TemplateError(InvalidInput):
    """A template that cannot be parsed or executed (one line, Go's wording)."""


class Missing:
    """A map key that is not there: Go prints it as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = Missing()


class Context:
    """A value with named fields, like the Go structs docker formats (ps rows, image rows …).

    Fields are values or callables; a callable field is called with the action's arguments
    (`{{.Label "com.example"}}`). An unknown field is an error naming `type_name`, as in Go.
    `loose=True` makes unknown fields print as their upper-cased name (the header row of a table)."""

    def __init__(self, type_name: str, fields: dict[str, Any], loose: bool = False) -> None:
        self.type_name = type_name
        self.fields = fields
        self.loose = loose

    def get(self, name: str) -> Any:
        if name in self.fields:
            return self.fields[name]
        if self.loose:
            return lambda *_a: name.upper()
        raise KeyError(name)


# -- lexing -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""", re.VERBOSE)


class Tok(Record):
    kind: str
    text: str
    pos: int


def _lex_action(body: str, line: int, col: int = 0) -> list[Tok]:
    """The tokens of an action's body; col: where the body starts in its line (for error positions)."""
    toks: list[Tok] = []
    i = 0
    while i < len(body):
        m = _TOKEN.match(body, i)
        if not m:
            ch = body[i]
            what = "in command" if ch not in "}{" else "in operand"
            if ch == '"':
                raise TemplateError(f"template: :{line}: unterminated quoted string")
            raise TemplateError(f"template: :{line}: unexpected {json.dumps(ch)} {what}")
        kind = m.lastgroup or ""
        if kind != "ws":
            # a field right after ")" or after an operand is a chained field: (index .A 0).Name
            toks.append(Tok(kind, m.group(), col + i))
        i = m.end()
    return toks


# -- the tree ---------------------------------------------------------------------------------

class Node(Record):
    line: int


class Text(Node):
    text: str


class Operand(Record):
    kind: str            # field, var, string, number, bool, nil, ident, pipe
    value: Any
    chain: list[str] = Factory(list)  # fields applied after the operand
    col: int = 0


class Command(Record):
    args: list[Operand]


class Pipeline(Record):
    decl: list[str]
    assign: bool
    cmds: list[Command]
    text: str
    col: int = 0


class Action(Node):
    pipe: Pipeline


class Block(Node):
    kind: str            # if, range, with
    pipe: Pipeline
    body: list[Node]
    else_body: list[Node] | None


# -- parsing ----------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue")


def _split(src: str) -> Iterator[tuple[str, str, int, int]]:
    """("text", s, line, 0) and ("action", body, line, column of the body) pieces, with trim
    markers applied."""
    pos = 0
    pending_trim = False
    while True:
        start = src.find("{{", pos)
        if start < 0:
            text = src[pos:]
            yield "text", text.lstrip() if pending_trim else text, src.count("\n", 0, pos) + 1, 0
            return
        text = src[pos:start]
        line = src.count("\n", 0, start) + 1
        close = src.find("}}", start + 2)
        if close < 0:
            raise TemplateError(f"template: :{line}: unclosed action")
        m = _ACTION.match(src, start)
        assert m is not None
        body = m.group(2)
        if m.group(1):
            text = text.rstrip()
        if pending_trim:
            text = text.lstrip()
        yield "text", text, src.count("\n", 0, pos) + 1, 0
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError(f"template: :{line}: unclosed comment")
        else:
            yield "action", body, line, m.start(2) - (src.rfind("\n", 0, m.start(2)) + 1)
        pending_trim = bool(m.group(3))
        pos = m.end()


class _Parser:
    def __init__(self, src: str, funcs: dict[str, Callable[..., Any]]) -> None:
        self.pieces = list(_split(src))
        self.i = 0
        self.funcs = funcs
        self.pending: list[Tok] = []

    def parse(self) -> list[Node]:
        nodes, stop, line = self.list_until()
        if stop is not None:
            raise TemplateError(f"template: :{line}: unexpected {{{{{stop}}}}}")
        return nodes

    def list_until(self) -> tuple[list[Node], str | None, int]:
        """Nodes up to an {{end}} or {{else…}} (returned as the stop word) or the end of input."""
        nodes: list[Node] = []
        while self.i < len(self.pieces):
            kind, body, line, col = self.pieces[self.i]
            self.i += 1
            if kind == "text":
                if body:
                    nodes.append(Text(line, body))
                continue
            toks = _lex_action(body, line, col)
            if not toks:
                raise TemplateError(f"template: :{line}: missing value for command")
            word = toks[0].text if toks[0].kind == "ident" and toks[0].text in _KEYWORDS else None
            if word in ("end", "else"):
                if word == "end" and len(toks) > 1:
                    raise TemplateError(f"template: :{line}: unexpected {toks[1].text} in end")
                self.pending = toks[1:]
                return nodes, word, line
            if word in ("if", "range", "with"):
                nodes.append(self.block(word, toks[1:], line))
            elif word is not None:
                raise TemplateError(f"template: :{line}: {{{{{word}}}}} is not supported by berth's templates")
            else:
                nodes.append(Action(line, self.pipeline(toks, line, "command")))
        return nodes, None, self.pieces[-1][2] if self.pieces else 1

    def block(self, kind: str, toks: list[Tok], line: int) -> Block:
        pipe = self.pipeline(toks, line, kind)
        if kind == "range" and len(pipe.decl) > 2:
            raise TemplateError(f"template: :{line}: too many declarations in range")
        body, stop, at = self.list_until()
        else_body: list[Node] | None = None
        if stop is None:
            raise TemplateError(f"template: :{at}: unexpected EOF")
        if stop == "else":
            rest = self.pending
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with") and kind != "range":
                # {{else if …}} is {{else}}{{if …}}…{{end}} sharing this block's {{end}}
                else_body = [self.block(rest[0].text, rest[1:], at)]
            else:
                if rest:
                    raise TemplateError(f"template: :{at}: unexpected {rest[0].text} in else")
                else_body, stop2, at2 = self.list_until()
                if stop2 != "end":
                    raise TemplateError(f"template: :{at2}: " + ("unexpected EOF" if stop2 is None
                                                                else "expected end; found {{else}}"))
        return Block(line, kind, pipe, body, else_body)

    def pipeline(self, toks: list[Tok], line: int, context: str) -> Pipeline:
        decl: list[str] = []
        assign = False
        j = 0
        # $x := …, $i, $e := …, $x = …
        k = 0
        names = []
        while k < len(toks) and toks[k].kind == "var" and "." not in toks[k].text:
            names.append(toks[k].text)
            if k + 1 < len(toks) and toks[k + 1].kind == "comma":
                k += 2
                continue
            if k + 1 < len(toks) and toks[k + 1].kind in ("decl", "assign"):
                decl, assign, j = names, toks[k + 1].kind == "assign", k + 2
            break
        cmds, end = self.commands(toks, j, line)
        if end != len(toks):
            raise TemplateError(f"template: :{line}: unexpected {json.dumps(toks[end].text)} in {context}")
        if not cmds:
            raise TemplateError(f"template: :{line}: missing value for {context}")
        return Pipeline(decl, assign, cmds, " ".join(t.text for t in toks[j:]), toks[j].pos)

    def commands(self, toks: list[Tok], j: int, line: int) -> tuple[list[Command], int]:
        cmds: list[Command] = []
        args: list[Operand] = []
        while j < len(toks):
            t = toks[j]
            if t.kind == "rparen":
                break
            if t.kind == "pipe":
                if not args:
                    raise TemplateError(f"template: :{line}: missing command")
                cmds.append(Command(args))
                args = []
                j += 1
                continue
            op, j = self.operand(toks, j, line)
            args.append(op)
        if args:
            cmds.append(Command(args))
        elif cmds:
            raise TemplateError(f"template: :{line}: missing command")
        return cmds, j

    def operand(self, toks: list[Tok], j: int, line: int) -> tuple[Operand, int]:
        t = toks[j]
        j += 1
        if t.kind == "lparen":
            cmds, end = self.commands(toks, j, line)
            if end >= len(toks) or toks[end].kind != "rparen":
                raise TemplateError(f"template: :{line}: unclosed left paren")
            if not cmds:
                raise TemplateError(f"template: :{line}: missing value for parenthesized pipeline")
            op = Operand("pipe", Pipeline([], False, cmds, "", t.pos), col=t.pos)
            j = end + 1
        elif t.kind == "field":
            op = Operand("field", [p for p in t.text.split(".") if p], col=t.pos)
        elif t.kind == "var":
            name, *chain = t.text.split(".")
            op = Operand("var", name, chain, col=t.pos)
        elif t.kind == "string":
            op = Operand("string", json.loads(t.text), col=t.pos)
        elif t.kind == "raw":
            op = Operand("string", t.text[1:-1], col=t.pos)
        elif t.kind == "char":
            op = Operand("number", ord(json.loads('"' + t.text[1:-1] + '"')), col=t.pos)
        elif t.kind == "number":
            text = t.text
            num: int | float = int(text, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", text) else float(text)
            op = Operand("number", num, col=t.pos)
        elif t.kind == "ident":
            name, *chain = t.text.split(".")
            if name in ("true", "false"):
                op = Operand("bool", name == "true", col=t.pos)
            elif name == "nil":
                op = Operand("nil", None, col=t.pos)
            elif name in _KEYWORDS:
                raise TemplateError(f"template: :{line}: unexpected <{name}> in command")
            elif name not in self.funcs:
                raise TemplateError(f'template: :{line}: function "{name}" not defined')
            else:
                op = Operand("ident", name, chain, col=t.pos)
        else:
            raise TemplateError(f"template: :{line}: unexpected {json.dumps(t.text)} in operand")
        # a chained field after an operand: (…).Name, $x.Name is lexed whole
        while j < len(toks) and toks[j].kind == "field" and toks[j].pos == toks[j - 1].pos + len(toks[j - 1].text) \
                and toks[j].text != ".":
            op.chain += [p for p in toks[j].text.split(".") if p]
            j += 1
        return op, j


# -- running ----------------------------------------------------------------------------------

class _ExecError(Exception):
    pass


def go_str(v: Any) -> str:
    """A value as Go's fmt %v prints it."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e21:
            return str(int(v)) if abs(v) < 1e6 else f"{v:g}".replace("e+0", "e+")
        return repr(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in sorted(v, key=str)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, Context):
        return "{" + " ".join(go_str(x) for x in v.fields.values() if not callable(x)) + "}"
    return str(v)


def truth(v: Any) -> bool:
    if v is MISSING or v is None:
        return False
    if isinstance(v, Context):
        return True
    return bool(v)


def _to_json(v: Any) -> str:
    def plain(x: Any) -> Any:
        if x is MISSING:
            return None
        if isinstance(x, Context):
            # Go marshals docker's format contexts through a map: keys sorted, methods that take
            # arguments (Label) left out
            out = {}
            for k in sorted(x.fields):
                y = x.fields[k]
                if callable(y):
                    try:
                        y = y()
                    except TypeError:
                        continue
                out[k] = plain(y)
            return out
        return x

    return json.dumps(plain(v), separators=(",", ":"), ensure_ascii=False, default=str)


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*))?([a-zA-Z%])")


def go_sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs people use: %s %v %d %q %x %X %f %e %g %t %c %o %b %%."""
    out: list[str] = []
    pos = 0
    ai = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        v = args[ai]
        ai += 1
        spec = flags.replace("#", "")
        width_s = width or ""
        prec_s = f".{prec}" if prec is not None else ""
        try:
            if verb in "sv":
                s = go_str(v)
                s = s[:int(prec)] if prec is not None else s
                out.append(f"{s:{'<' if '-' in flags else '>'}{width_s}}")
            elif verb == "q":
                s = json.dumps(go_str(v), ensure_ascii=False)
                out.append(f"{s:{'<' if '-' in flags else '>'}{width_s}}")
            elif verb == "t":
                out.append(go_str(bool(v)))
            elif verb in "dxXob":
                out.append(("%" + spec + width_s + verb.replace("b", "d")) % int(v) if verb != "b"
                           else format(int(v), f"{spec}{width_s}b"))
            elif verb in "feEgG":
                out.append(("%" + spec + width_s + prec_s + verb) % float(v))
            elif verb == "c":
                out.append(chr(int(v)))
            else:
                out.append(f"%!{verb}({go_str(v)})")
        except (TypeError, ValueError):
            out.append(f"%!{verb}({type(v).__name__}={go_str(v)})")
    out.append(fmt[pos:])
    if ai < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{type(a).__name__}={go_str(a)}" for a in args[ai:]) + ")")
    return "".join(out)


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, MISSING) if not isinstance(k, int) else v.get(k, v.get(str(k), MISSING))
        elif isinstance(v, list | tuple | str):
            if not isinstance(k, int):
                raise _ExecError(f"cannot index slice/array with type {type(k).__name__}")
            if not 0 <= k < len(v):
                raise _ExecError(f"error calling index: index out of range: {k}")
            v = v[k]
        elif v is MISSING or v is None:
            raise _ExecError("error calling index: index of untyped nil")
        else:
            raise _ExecError(f"can't index item of type {type(v).__name__}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, str | list | tuple | dict):
        return len(v)
    raise _ExecError(f"error calling len: len of type {type(v).__name__}")


def _cmp(op: Callable[[Any, Any], bool], name: str) -> Callable[..., bool]:
    def f(a: Any, *bs: Any) -> bool:
        if not bs:
            raise _ExecError(f"wrong number of args for {name}: want at least 2 got 1")
        for b in bs:
            x, y = (None if a is MISSING else a), (None if b is MISSING else b)
            try:
                if name == "eq" and op(x, y):
                    return True
                if name != "eq":
                    return op(x, y)
            except TypeError:
                raise _ExecError(f"error calling {name}: incompatible types for comparison") from None
        return False
    return f


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _truncate(s: Any, n: int) -> str:
    s = go_str(s)
    return s[:n] if len(s) > n else s


def _slice(v: Any, *idx: int) -> Any:
    if len(idx) == 0:
        return v
    return v[idx[0]:idx[1]] if len(idx) > 1 else v[idx[0]:]


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _to_json,
    "join": lambda items, sep: sep.join(go_str(x) for x in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep) if sep else list(go_str(s)),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": lambda s: re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), go_str(s)),
    "pad": lambda s, before, after: " " * before + go_str(s) + " " * after,
    "truncate": _truncate,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": lambda *a: "".join(go_str(x) if i == 0 or isinstance(x, str) or isinstance(a[i - 1], str)
                                else " " + go_str(x) for i, x in enumerate(a)),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": lambda fmt, *a: go_sprintf(fmt, *a),
    "not": lambda a: not truth(a),
    "and": _and,
    "or": _or,
    "eq": _cmp(lambda a, b: a == b, "eq"),
    "ne": _cmp(lambda a, b: a != b, "ne"),
    "lt": _cmp(lambda a, b: a < b, "lt"),
    "le": _cmp(lambda a, b: a <= b, "le"),
    "gt": _cmp(lambda a, b: a > b, "gt"),
    "ge": _cmp(lambda a, b: a >= b, "ge"),
}


class Template:
    """A parsed template; render(data) runs it."""

    def __init__(self, source: str, funcs: dict[str, Callable[..., Any]] | None = None,
                 missing_key_error: bool = False) -> None:
        """missing_key_error: a map key that is not there is an error (Go's missingkey=error,
        which docker inspect sets) instead of <no value>."""
        self.source = source
        self.funcs = {**FUNCS, **(funcs or {})}
        self.missing_key_error = missing_key_error
        self.nodes = _Parser(source, self.funcs).parse()

    def render(self, data: Any) -> str:
        self._at = 0  # the column of the node being run, for error messages
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return "".join(out)

    # -- evaluation -------------------------------------------------------------------------
    def _run(self, nodes: Sequence[Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        for n in nodes:
            if isinstance(n, Text):
                out.append(n.text)
            elif isinstance(n, Action):
                v = self._pipe(n.pipe, dot, scopes, n.line)
                if not n.pipe.decl:
                    out.append(go_str(v))
            elif isinstance(n, Block):
                self._block(n, dot, scopes, out)

    def _block(self, n: Block, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        scopes = scopes + [{}]
        self._at = n.pipe.col
        if n.kind == "range":
            v = self._pipe(n.pipe, dot, scopes, n.line, declare=False)
            items: list[tuple[Any, Any]]
            if isinstance(v, dict):
                items = [(k, v[k]) for k in sorted(v, key=str)]
            elif isinstance(v, list | tuple):
                items = list(enumerate(v))
            elif isinstance(v, int) and not isinstance(v, bool):
                items = [(i, i) for i in range(v)]
            elif v is None or v is MISSING:
                items = []
            else:
                raise TemplateError(self._where(n.line, n.pipe.text, f"range can't iterate over {go_str(v)}"))
            for k, x in items:
                inner = scopes + [{}]
                if len(n.pipe.decl) == 1:
                    inner[-1][n.pipe.decl[0]] = x
                elif len(n.pipe.decl) == 2:
                    inner[-1][n.pipe.decl[0]] = k
                    inner[-1][n.pipe.decl[1]] = x
                self._run(n.body, x, inner, out)
            if not items and n.else_body is not None:
                self._run(n.else_body, dot, scopes, out)
            return
        v = self._pipe(n.pipe, dot, scopes, n.line)
        if truth(v):
            self._run(n.body, v if n.kind == "with" else dot, scopes, out)
        elif n.else_body is not None:
            self._run(n.else_body, dot, scopes, out)

    def _pipe(self, p: Pipeline, dot: Any, scopes: list[dict[str, Any]], line: int, declare: bool = True) -> Any:
        v: Any = None
        first = True
        for c in p.cmds:
            v = self._command(c, dot, scopes, line, p.text, None if first else v, not first)
            first = False
        if declare and p.decl:
            if p.assign:
                for s in reversed(scopes):
                    if p.decl[0] in s:
                        s[p.decl[0]] = v
                        break
                else:
                    raise TemplateError(self._where(line, p.text, f"undefined variable: {p.decl[0]}"))
            else:
                scopes[-1][p.decl[0]] = v
        return v

    def _command(self, c: Command, dot: Any, scopes: list[dict[str, Any]], line: int, text: str,
                 piped: Any, has_piped: bool) -> Any:
        head, rest = c.args[0], c.args[1:]
        args = [self._operand(a, dot, scopes, line, text) for a in rest]
        if has_piped:
            args.append(piped)
        self._at = head.col
        if head.kind == "ident":
            fn = self.funcs[head.value]
            try:
                v = fn(*args)
            except _ExecError as e:
                raise TemplateError(self._where(line, text, str(e))) from None
            except (TypeError, ValueError, AttributeError, IndexError, KeyError) as e:
                raise TemplateError(self._where(line, text, f"error calling {head.value}: {e}")) from None
            return self._chain(v, head.chain, line, text)
        if head.kind == "field" and head.value and (args or callable(self._field_value(head, dot, line, text))):
            v = self._field_value(head, dot, line, text)
            if callable(v):
                try:
                    return v(*args)
                except TypeError as e:
                    raise TemplateError(self._where(line, text, f"wrong number of args: {e}")) from None
        if args:
            raise TemplateError(self._where(line, text, f"can't give argument to non-function {text.split()[0]}"))
        return self._operand(head, dot, scopes, line, text)

    def _field_value(self, op: Operand, dot: Any, line: int, text: str) -> Any:
        return self._chain(dot, op.value, line, text, call=False)

    def _operand(self, op: Operand, dot: Any, scopes: list[dict[str, Any]], line: int, text: str) -> Any:
        self._at = op.col
        if op.kind == "field":
            v = self._chain(dot, op.value, line, text)
        elif op.kind == "var":
            for s in reversed(scopes):
                if op.value in s:
                    v = s[op.value]
                    break
            else:
                raise TemplateError(self._where(line, text, f"undefined variable: {op.value}"))
            v = self._chain(v, op.chain, line, text)
        elif op.kind == "pipe":
            v = self._chain(self._pipe(op.value, dot, scopes, line), op.chain, line, text)
        elif op.kind == "ident":
            v = self._command(Command([op]), dot, scopes, line, text, None, False)
        else:
            v = op.value
        return v

    def _chain(self, v: Any, names: list[str], line: int, text: str, call: bool = True) -> Any:
        for i, name in enumerate(names):
            if isinstance(v, Context):
                try:
                    v = v.get(name)
                except KeyError:
                    raise TemplateError(self._where(line, text, f"can't evaluate field {name} in type "
                                                                f"{v.type_name}")) from None
                if callable(v) and (call or i < len(names) - 1):
                    v = v()
            elif isinstance(v, dict):
                if name not in v and self.missing_key_error:
                    raise TemplateError(self._where(line, text, f'map has no entry for key "{name}"'))
                v = v.get(name, MISSING)
            elif v is MISSING or v is None:
                # Go: a field of a missing map value is <no value> too when the map holds interfaces
                v = MISSING
            else:
                raise TemplateError(self._where(line, text, f"can't evaluate field {name} in type "
                                                            f"{_go_type(v)}"))
        return v

    def _where(self, line: int, text: str, msg: str) -> str:
        return f'template: :{line}:{self._at}: executing "" at <{text}>: {msg}'


def _go_type(v: Any) -> str:
    return {str: "string", bool: "bool", int: "int", float: "float64", list: "[]interface {}"}.get(type(v),
                                                                                                 type(v).__name__)


def parse(source: str, funcs: dict[str, Callable[..., Any]] | None = None) -> Template:
    """A template from a `--format` value, or a one-line "template parsing error: …" InvalidInput
    (docker inspect's words; list commands say "failed to parse template: ")."""
    try:
        return Template(source, funcs)
    except TemplateError as e:
        raise TemplateError(f"template parsing error: {e}") from None


def unescape(fmt: str) -> str:
    """docker reads the two characters \\t and \\n in a --format value as a tab and a newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def tabwriter(lines: list[str], minwidth: int = 10, padding: int = 3) -> list[str]:
    """Go's text/tabwriter as docker sets it up (minwidth 10, padding 3, blanks): cells ended by a
    tab are aligned in columns; the last cell of a line is left as it is."""
    cells = [ln.split("\t") for ln in lines]
    widths: list[int] = []
    for row in cells:
        for i, c in enumerate(row[:-1]):
            w = max(len(c) + padding, minwidth)
            if i >= len(widths):
                widths.append(w)
            else:
                widths[i] = max(widths[i], w)
    out = []
    for row in cells:
        out.append("".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + row[-1])
    return out
