"""Docker's word processing for Dockerfile arguments: quotes, escapes and `$VAR` expansion.

Follows the Dockerfile reference ("Environment replacement") and moby's shell lexer: `$VAR` and
`${VAR}` expand (unset is empty), `${VAR:-word}` gives word when VAR is unset or empty,
`${VAR:+word}` gives word when VAR is set and non-empty, `${VAR:?msg}` fails when unset or empty.
Single quotes keep their text literally, double quotes expand but group; the escape character
(`\\` or the `# escape=` one) keeps the next character literal (inside double quotes only before
`"`, `$` and itself). Quotes themselves are removed, as the shell does.
"""

from __future__ import annotations

from collections.abc import Mapping

from berth.errors import InvalidInput


class _Scanner:
    def __init__(self, text: str, env: Mapping[str, str | None], escape: str) -> None:
        self.text, self.pos, self.env, self.escape = text, 0, env, escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def lookup(self, name: str) -> str:
        return self.env.get(name) or ""

    def word(self, stop: str = "") -> str:
        """Characters up to stop (consumed) or the end, with quotes and expansions processed."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                if stop:
                    raise InvalidInput(f"missing '{stop}' in {self.text!r}")
                return "".join(out)
            if stop and ch == stop:
                self.next()
                return "".join(out)
            if ch == "'":
                out.append(self.single_quoted())
            elif ch == '"':
                out.append(self.double_quoted())
            elif ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                self.next()
                out.append(self.next())  # a trailing escape character is dropped
            else:
                out.append(self.next())

    def single_quoted(self) -> str:
        self.next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidInput(f"unmatched single quote in {self.text!r}")
        out, self.pos = self.text[self.pos:end], end + 1
        return out

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidInput(f"unmatched double quote in {self.text!r}")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                self.next()
                if self.peek() in ('"', "$", self.escape) and self.peek():
                    out.append(self.next())
                else:
                    out.append(ch)
            else:
                out.append(self.next())

    def name(self) -> str:
        start = self.pos
        if self.peek().isdigit():
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.pos]
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start:self.pos]

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.lookup(name) if name else "$"
        self.next()
        name = self.name()
        if not name:
            raise InvalidInput(f"bad substitution in {self.text!r}")
        ch = self.next()
        if ch == "}":
            return self.lookup(name)
        if ch != ":":
            raise InvalidInput(f"missing ':' in substitution in {self.text!r}")
        modifier = self.next()
        word = self.word("}")
        value = self.lookup(name)
        if modifier == "-":
            return value or word
        if modifier == "+":
            return word if value else ""
        if modifier == "?":
            if not value:
                raise InvalidInput(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        raise InvalidInput(f"unsupported modifier ({modifier}) in substitution in {self.text!r}")


def process_word(text: str, env: Mapping[str, str | None], escape: str = "\\") -> str:
    """One word: quotes removed, escapes applied, variables expanded."""
    return _Scanner(text, env, escape).word()


def process_words(text: str, env: Mapping[str, str | None], escape: str = "\\") -> list[str]:
    """Whitespace-separated words (whitespace inside quotes or escaped does not split), each
    processed as process_word does."""
    return [process_word(w, env, escape) for w in split_words(text, escape)]


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes in the words (docker's
    parseWords for ENV/LABEL name=value lists)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            cur.append(ch + text[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words
