"""Java regular expressions (as in botocore's service models) compiled with Python's `re`.

The `pattern` of a shape in a botocore model is written for `java.util.regex` (it uses `\\p{Alnum}`,
`\\z`, `[\\w-_]`, ...). Python's `re` reads most patterns the same way, but not all:

- `\\p{L}`, `\\P{N}`, `\\p{Alnum}`, ... (Unicode categories and Java's POSIX classes, which are
  ASCII-only in Java) do not exist in `re`: they become explicit character classes.
- `\\d`, `\\w`, `\\s`, `\\b` are ASCII-only in Java: everything is compiled with `re.ASCII`.
- `.` and `$` know more line terminators in Java (`\\r`, `\\u0085`, `\\u2028`, `\\u2029`).
- `\\z` is `re`'s `\\Z`; Java's `\\Z` allows a final line terminator.
- `\\uD83D\\uDE00` (a UTF-16 surrogate pair) is one supplementary code point in Java.
- `[\\w-_]`: after a class escape Java reads `-` as itself; `re` calls it a bad range.
- `(?i)` in mid-pattern applies to the rest of its group in Java; `re` wants scoped `(?i:...)`.
- A quantifier on a zero-width assertion (`${1,128}`, as in SageMaker's tag patterns) repeats
  the assertion in Java: one or more times is the assertion, zero or more is nothing.
- Nested classes `[a-z[0-9]]` are unions in Java.

Anything else Java-only (`\\G`, `&&` intersections, `\\X`, other inline flags, ...) raises
`UntranslatablePattern`: a pattern is never skipped silently.

A value must match as a whole, as Java's `Matcher.matches()` does. The Smithy spec says a
`pattern` is not implicitly anchored (https://smithy.io/2.0/spec/constraint-traits.html), but the
services check whole values: SageMaker refuses the processing job name
'my_image_with_underscores-2021-01-01-00-00-00-000' with "Member must satisfy regular expression
pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", which a search would accept
(https://github.com/aws/sagemaker-python-sdk/issues/2652; also issue 384 there).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_END = r"(?=(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z)"  # Java's `$` and `\Z` without MULTILINE
_DOT = r"[^\n\r\u0085\u2028\u2029]"
_ZERO_WIDTH = {"^", _END, r"\A", r"\Z", r"\b", r"\B"}

# Java's POSIX character classes (US-ASCII only unless UNICODE_CHARACTER_CLASS is set):
# https://docs.oracle.com/en/java/javase/21/docs/api/java.base/java/util/regex/Pattern.html
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_POSIX: dict[str, str] = {
    "Lower": "abcdefghijklmnopqrstuvwxyz",
    "Upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "ASCII": "".join(map(chr, range(0x80))),
    "Alpha": _ALNUM[:52],
    "Digit": "0123456789",
    "Alnum": _ALNUM,
    "Punct": _PUNCT,
    "Graph": _ALNUM + _PUNCT,
    "Print": _ALNUM + _PUNCT + " ",
    "Blank": " \t",
    "Cntrl": "".join(map(chr, range(0x20))) + "\x7f",
    "XDigit": "0123456789abcdefABCDEF",
    "Space": " \t\n\x0b\f\r",
    "L1": "".join(map(chr, range(0x100))),
}
# Unicode White_Space (Java's \p{IsWhite_Space} / \p{IsWhitespace}).
_WHITE_SPACE = "\t\n\x0b\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
_WHITE_SPACE += "\u2028\u2029\u202f\u205f\u3000"
_HORIZONTAL = (
    " \t\xa0\u1680\u180e" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
)
_VERTICAL = "\n\x0b\f\r\x85\u2028\u2029"
_ESCAPE_CLASSES = {"h": _HORIZONTAL, "v": _VERTICAL}


class UntranslatablePattern(ValueError):
    """A model pattern uses Java regex syntax this module does not translate."""


@functools.cache
def compile_java(pattern: str) -> re.Pattern[str]:
    """The Python regex that matches what `pattern` matches in java.util.regex."""
    translated = _Translator(pattern).translate()
    try:
        return re.compile(translated, re.ASCII)
    except re.error as exc:
        raise UntranslatablePattern(f"{pattern!r}: not a valid Java regex here ({exc})") from None


def java_matches(pattern: str, value: str) -> bool:
    """Whether the whole of `value` matches a model `pattern`, as the services check it."""
    return compile_java(pattern).fullmatch(value) is not None


@functools.lru_cache(maxsize=1)
def _categories() -> dict[str, list[tuple[int, int]]]:
    """Code point ranges of every Unicode general category (two-letter and one-letter)."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    start, current = 0, unicodedata.category(chr(0))
    for code in range(1, sys.maxunicode + 2):
        category = unicodedata.category(chr(code)) if code <= sys.maxunicode else None
        if category != current:
            ranges.setdefault(current, []).append((start, code - 1))
            ranges.setdefault(current[0], []).append((start, code - 1))
            start, current = code, category
    return {name: _merge(spans) for name, spans in ranges.items()}


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _complement(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, next_low = [], 0
    for low, high in spans:
        if low > next_low:
            out.append((next_low, low - 1))
        next_low = high + 1
    if next_low <= sys.maxunicode:
        out.append((next_low, sys.maxunicode))
    return out


def _chars(text: str) -> list[tuple[int, int]]:
    return _merge((ord(c), ord(c)) for c in text)


def _property_ranges(name: str, pattern: str) -> list[tuple[int, int]]:
    """Code point ranges of a Java `\\p{name}`."""
    categories = _categories()
    bare = name[2:] if name.startswith("Is") and name[2:] in categories else name
    for prefix in ("gc=", "general_category="):
        if bare.startswith(prefix):
            bare = bare[len(prefix) :]
    if bare in categories:
        return categories[bare]
    if name in _POSIX:
        return _chars(_POSIX[name])
    if name == "all":
        return [(0, sys.maxunicode)]
    if name == "LD":  # Java: letter or digit
        return _merge([*categories["L"], *categories["Nd"]])
    if name in ("IsWhite_Space", "IsWhiteSpace", "IsWhitespace"):
        return _chars(_WHITE_SPACE)
    if name in ("IsDigit",):
        return categories["Nd"]
    if name in ("IsLetter",):
        return categories["L"]
    raise UntranslatablePattern(f"{pattern!r}: \\p{{{name}}} is not translated")


def _class_body(spans: list[tuple[int, int]]) -> str:
    """Character-class body (no brackets) for code point ranges."""
    return "".join(
        _class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
        for low, high in spans
    )


def _class_char(code: int) -> str:
    return f"\\U{code:08x}"


@dataclass
class _Group:
    start: int
    scoped: int = 0
    dotall: bool = False


class _Translator:
    """One left-to-right pass over a Java pattern, writing the Python equivalent."""

    def __init__(self, pattern: str) -> None:
        self.source = pattern
        self.pos = 0
        self.out: list[str] = []
        # Per open group: where it starts in `out`, how many scoped-flag groups were opened
        # inside it (closed with it), and whether DOTALL holds in it.
        self.groups: list[_Group] = [_Group(0)]

    def fail(self, why: str) -> UntranslatablePattern:
        return UntranslatablePattern(f"{self.source!r} at {self.pos}: {why}")

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.source[index] if index < len(self.source) else ""

    def translate(self) -> str:
        while self.pos < len(self.source):
            self.step()
        if len(self.groups) != 1:
            raise self.fail("unbalanced parentheses")
        self.out.append(")" * self.groups[0].scoped)
        return "".join(self.out)

    def step(self) -> None:
        char = self.peek()
        if char == "\\":
            self.emit_atom(self.escape(in_class=False))
        elif char == "[":
            self.emit_atom(self.char_class())
        elif char == "(":
            self.open_group()
        elif char == ")":
            self.close_group()
        elif char == "|":
            self.pos += 1
            self.out.append("|")
        elif char in "*+?{":
            self.quantifier()
        elif char == ".":
            self.pos += 1
            self.emit_atom(r"[\s\S]" if self.groups[-1].dotall else _DOT)
        elif char == "$":
            self.pos += 1
            self.emit_atom(_END)
        elif char == "^":
            self.pos += 1
            self.emit_atom("^")
        else:
            self.pos += 1
            self.emit_atom(re.escape(char))

    def emit_atom(self, text: str) -> None:
        self.out.append(text)

    # --- groups and flags

    def open_group(self) -> None:
        rest = self.source[self.pos :]
        flags = re.match(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?(\)|:)", rest)
        if flags and (flags.group(1) or flags.group(2)):
            on, off, end = flags.group(1), flags.group(2) or "", flags.group(3)
            if set(on + off) - {"i", "s"}:
                raise self.fail(f"inline flags {flags.group(0)!r} are not translated")
            dotall = ("s" in on) or (self.groups[-1].dotall and "s" not in off)
            on, off = on.replace("s", ""), off.replace("s", "")
            scoped = f"(?{on}{'-' + off if off else ''}:" if on or off else "(?:"
            self.pos += len(flags.group(0))
            if end == ":":
                self.out.append(scoped)
                self.groups.append(_Group(len(self.out), dotall=dotall))
                return
            # Java: the flag holds to the end of the enclosing group. That is a scoped group
            # closed with it, exact when no '|' of this group comes later in this alternative.
            self.check_flag_scope()
            self.out.append(scoped)
            self.groups[-1].scoped += 1
            self.groups[-1].dotall = dotall
            return
        for java, python in (("(?<=", "(?<="), ("(?<!", "(?<!"), ("(?=", "(?="), ("(?!", "(?!"),
                             ("(?>", "(?>"), ("(?:", "(?:")):  # fmt: skip
            if rest.startswith(java):
                self.pos += len(java)
                self.out.append(python)
                self.groups.append(_Group(len(self.out), dotall=self.groups[-1].dotall))
                return
        named = re.match(r"\(\?<([a-zA-Z][a-zA-Z0-9]*)>", rest)
        if named:
            self.pos += len(named.group(0))
            self.out.append(f"(?P<{named.group(1)}>")
        elif rest.startswith("(?"):
            raise self.fail("group construct not translated")
        else:
            self.pos += 1
            self.out.append("(")
        self.groups.append(_Group(len(self.out), dotall=self.groups[-1].dotall))

    def check_flag_scope(self) -> None:
        start = self.groups[-1].start
        before = "".join(self.out[start:])
        if before and not before.endswith("|") and self.alternation_follows():
            raise self.fail("an inline flag inside an alternative followed by '|'")

    def alternation_follows(self) -> bool:
        depth, index, in_class = 0, self.pos, False
        while index < len(self.source):
            char = self.source[index]
            if char == "\\":
                index += 2
                continue
            if in_class:
                in_class = char != "]"
            elif char == "[":
                in_class = True
            elif char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    return False
                depth -= 1
            elif char == "|" and depth == 0:
                return True
            index += 1
        return False

    def close_group(self) -> None:
        if len(self.groups) == 1:
            raise self.fail("unbalanced ')'")
        group = self.groups.pop()
        self.pos += 1
        self.out.append(")" * group.scoped + ")")

    # --- quantifiers

    def quantifier(self) -> None:
        char = self.peek()
        if char == "{":
            match = re.match(r"\{(\d+)(,(\d*))?\}", self.source[self.pos :])
            if match is None:
                raise self.fail("'{' that is not a quantifier (an error in Java)")
            text, minimum = match.group(0), int(match.group(1))
        else:
            text, minimum = char, 1 if char == "+" else 0
        self.pos += len(text)
        if self.peek() in ("?", "+"):  # lazy or possessive: both exist in Python 3.11
            text += self.peek()
            self.pos += 1
        if self.out and self.out[-1] in _ZERO_WIDTH:
            # Java repeats the assertion: at least once is the assertion, else it may vanish.
            if minimum == 0:
                self.out.pop()
            return
        self.out.append(text)

    # --- escapes

    def escape(self, *, in_class: bool) -> str:
        """Translate the escape at `pos` (a backslash); returns regex text."""
        letter = self.peek(1)
        if not letter:
            raise self.fail("trailing backslash")
        self.pos += 2
        if letter in "pP":
            name = self.property_name()
            spans = _property_ranges(name, self.source)
            if letter == "P":
                spans = _complement(spans)
            return _class_body(spans) if in_class else f"[{_class_body(spans)}]"
        if letter in "hv":
            body = _class_body(_chars(_ESCAPE_CLASSES[letter]))
            return body if in_class else f"[{body}]"
        if letter in "HV":
            if in_class:
                raise self.fail(f"\\{letter} inside a class is not translated")
            return f"[^{_class_body(_chars(_ESCAPE_CLASSES[letter.lower()]))}]"
        if letter == "u":
            return self.utf16_escape()
        if letter == "x":
            return self.hex_escape()
        if letter == "0":
            digits = re.match(r"[0-3]?[0-7]{1,2}|[0-7]", self.source[self.pos :])
            if digits is None:
                raise self.fail("\\0 needs octal digits in Java")
            self.pos += len(digits.group(0))
            return _class_char(int(digits.group(0), 8))
        if letter == "c":
            control = self.peek()
            if not control:
                raise self.fail("\\c needs a character")
            self.pos += 1
            return _class_char(ord(control) ^ 64)
        if letter == "e":
            return r"\x1b"
        if letter == "Q":
            end = self.source.find("\\E", self.pos)
            end = len(self.source) if end < 0 else end
            quoted = self.source[self.pos : end]
            self.pos = min(len(self.source), end + 2)
            return "".join(_class_char(ord(c)) for c in quoted) if in_class else re.escape(quoted)
        if in_class:
            if letter in "dDwWsStnrfa" or not letter.isalnum():
                return "\\" + letter
            raise self.fail(f"\\{letter} inside a class is not translated")
        if letter == "z":
            return r"\Z"
        if letter == "Z":
            return _END
        if letter == "R":
            return r"(?:\r\n|[\n\x0b\f\r\x85\u2028\u2029])"
        if letter == "k":
            named = re.match(r"<([a-zA-Z][a-zA-Z0-9]*)>", self.source[self.pos :])
            if named is None:
                raise self.fail("\\k needs <name>")
            self.pos += len(named.group(0))
            return f"(?P={named.group(1)})"
        if letter in "dDwWsSbBAtnrfa" or letter.isdigit() or not letter.isalnum():
            return "\\" + letter
        raise self.fail(f"\\{letter} is not translated")

    def property_name(self) -> str:
        if self.peek() == "{":
            end = self.source.find("}", self.pos)
            if end < 0:
                raise self.fail("unterminated \\p{")
            name = self.source[self.pos + 1 : end]
            self.pos = end + 1
            return name
        name = self.peek()  # \pL
        self.pos += 1
        return name

    def utf16_escape(self) -> str:
        unit = self.hex_digits(4)
        if 0xD800 <= unit <= 0xDBFF and self.source[self.pos : self.pos + 2] == "\\u":
            saved = self.pos
            self.pos += 2
            low = self.hex_digits(4)
            if 0xDC00 <= low <= 0xDFFF:
                return _class_char(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
            self.pos = saved
        return _class_char(unit)

    def hex_escape(self) -> str:
        if self.peek() == "{":
            end = self.source.find("}", self.pos)
            if end < 0:
                raise self.fail("unterminated \\x{")
            code = int(self.source[self.pos + 1 : end], 16)
            self.pos = end + 1
            return _class_char(code)
        return _class_char(self.hex_digits(2))

    def hex_digits(self, count: int) -> int:
        digits = self.source[self.pos : self.pos + count]
        if len(digits) != count or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail(f"expected {count} hex digits")
        self.pos += count
        return int(digits, 16)

    # --- character classes

    def char_class(self) -> str:
        """`[...]` including Java's nested unions; returns a Python class."""
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        body: list[str] = []
        first = True
        while True:
            char = self.peek()
            if not char:
                raise self.fail("unterminated character class")
            if char == "]" and not first:
                self.pos += 1
                break
            if char == "]":
                raise self.fail("']' first in a class is not translated")
            first = False
            if char == "&" and self.peek(1) == "&":
                raise self.fail("class intersection '&&' is not translated")
            if char == "[":
                nested = self.char_class()
                if nested.startswith("[^"):
                    raise self.fail("a negated nested class is not translated")
                body.append(nested[1:-1])
                continue
            if char == "\\":
                start = self.pos
                item = self.escape(in_class=True)
                is_set = self.source[start + 1] in "dDwWsSpPhv"
                body.append(item)
                if is_set and self.peek() == "-" and self.peek(1) != "]":
                    # Java: '-' after a class escape is a literal, not a range.
                    self.pos += 1
                    body.append(r"\-")
                continue
            self.pos += 1
            body.append("\\" + char if char in "[]\\^|&~" else char)
        return f"[{'^' if negated else ''}{''.join(body)}]"
