"""SQL statements as they are stored and shown: literals and parameters gone, lists folded.

The normalised text is what people see and what statements are grouped by, so no literal value
and no parameter value may survive: literals hold passwords, e-mail addresses, tokens. One
compiled pattern scans a statement once, left to right, so a quote inside a comment or a ``--``
inside a string never confuses it; identifiers (``table1``, ``"col 2"``) are kept whole, which
keeps the digits in their names. ``IN`` lists and ``VALUES`` rows made only of placeholders fold to
``(...)``, so one query with 1 or 50 ids is one statement.

Backslashes and Oracle's ``q'[...]'`` quotes are read differently by different databases (MySQL
escapes ``\\'``, standard SQL does not). A statement holding them is read every way, and what any
reading takes for a literal is masked, so it cannot leak whichever database ran it. A reading that
leaves a literal open is set aside when another closes them all: the database that ran the
statement closed them all (a statement cut at ``MAX_INPUT_CHARS`` is open in every reading, and
then masked in every one).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

__all__ = ["MAX_INPUT_CHARS", "MAX_OUTPUT_CHARS", "normalise_statement", "statement_id"]

#: longer statements are cut first, so one huge ``INSERT`` costs bounded time
MAX_INPUT_CHARS = 10_000
#: longer normalised texts end in ``…``
MAX_OUTPUT_CHARS = 2_000
#: statements up to this long are cached; the cache's memory stays bounded
_CACHED_CHARS = 2_000
#: what stands for a value that is not a string (callers pass only ``str``)
_NOT_TEXT = "?"

# Whitespace and comments: one space.
_SPACE = r"(?P<space>(?:\s|--[^\r\n]*|/\*.*?(?:\*/|\Z))+)"
# Kept as written: identifiers (their digits too), quoted identifiers, casts (``::int``), ``%%``.
# A ``[...]`` is an identifier only when it cannot be an array subscript or ``ARRAY[...]``.
_KEEP = (
    r"(?P<keep>[^\W\d][\w$]*"
    r'|"[^"]*(?:""[^"]*)*"'
    r"|`[^`]*(?:``[^`]*)*`"
    r"|\[(?=[^\W\d])[^\]\[,'\"()+\-*/%<>=|&^~!:\r\n]*\]"
    r"|::|%%)"
)
# A quote that never closes (or a statement cut inside a literal) runs to the end; its prefix
# (``E'``, ``N'``, ``q'``...) with it, tried before identifiers so the prefix is not kept as one.
_OPEN_PREFIXED = r"(?P<opened>(?:[EeNnXxBbRr]|[Uu]&|[Nn]?[Qq])'.*)"
_OPEN = r"(?P<open>['\"`].*)"
_OPEN_KINDS = ("open", "opened")

_STANDARD_STRING = r"'[^']*(?:''[^']*)*'"
_BACKSLASH_STRING = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'"
_ORACLE_QUOTE = r"[Nn]?[Qq]'(?:\[.*?\]|\{.*?\}|\(.*?\)|<.*?>|(?P<qd>[^\s'\[{(<]).*?(?P=qd))'"
_DOLLAR_QUOTE = r"\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z)"
_NUMBER = (
    r"0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9][0-9_]*)?"
)
# Every DB-API paramstyle: qmark ``?`` and ``?1``, format ``%s``, pyformat ``%(name)s``, named
# ``:name``, numeric ``:1`` and ``$1`` (psycopg 3 adds ``%b`` and ``%t``).
_PLACEHOLDER = r"\?[0-9]+|%\([^()]*\)[sbt]|%[sbt](?!\w)|(?<![\w:]):(?:[^\W\d]\w*|[0-9]+)|\$[0-9]+"


def _scanner(string: str, oracle: bool) -> re.Pattern[str]:
    strings = ([_ORACLE_QUOTE] if oracle else []) + [
        r"[Ee]" + _BACKSLASH_STRING,  # E'...' escapes with backslashes everywhere
        r"(?:[Uu]&|[NnXxBbRr])?" + string,
        _DOLLAR_QUOTE,
        _NUMBER,
        _PLACEHOLDER,
    ]
    literal = "(?P<literal>" + "|".join(strings) + ")"
    return re.compile("|".join([_SPACE, literal, _OPEN_PREFIXED, _KEEP, _OPEN]), re.DOTALL)


_STANDARD = _scanner(_STANDARD_STRING, oracle=False)
_BACKSLASH = _scanner(_BACKSLASH_STRING, oracle=False)
_ORACLE = _scanner(_STANDARD_STRING, oracle=True)
_ORACLE_HINT = re.compile(r"[Qq]'")

_ITEM = r"(?:[-+]?\?(?:::\w+(?:\[\])?)?|NULL|DEFAULT|TRUE|FALSE)"
_ROW = rf"\( ?{_ITEM}(?: ?, ?{_ITEM})* ?\)"
_IN_LIST = re.compile(rf"\b(IN) ?{_ROW}", re.IGNORECASE)
_VALUES_ROWS = re.compile(rf"\b(VALUES?) ?{_ROW}(?: ?, ?{_ROW})*", re.IGNORECASE)
# ``= -5`` and ``= 5`` are one statement; ``a - 5`` keeps its operator.
_UNARY_MINUS = re.compile(r"([=<>(,] ?)-(?=\?)")


def _token(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "keep":
        return match.group()
    if kind == "space":
        return " "
    return "?"


def _literal_spans(scanner: re.Pattern[str], sql: str) -> list[tuple[int, int]]:
    return [m.span() for m in scanner.finditer(sql) if m.lastgroup in ("literal", *_OPEN_KINDS)]


def _leaves_open(scanner: re.Pattern[str], sql: str) -> bool:
    """Whether this reading of ``sql`` has a literal that never closes."""
    return any(m.lastgroup in _OPEN_KINDS for m in scanner.finditer(sql))


def _masked(sql: str, readings: list[re.Pattern[str]]) -> str:
    """``sql`` with every literal of every reading masked: safe whichever reading the database used."""
    spans = sorted(span for scanner in readings for span in _literal_spans(scanner, sql))
    if not spans:
        return _STANDARD.sub(_token, sql)
    pieces: list[str] = []
    done = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        pieces += [sql[done:start], "''"]
        done = end
        start, end = next_start, next_end
    pieces += [sql[done:start], "''", sql[end:]]
    return _STANDARD.sub(_token, "".join(pieces))


def _scan(sql: str) -> str:
    readings = [_STANDARD]
    if "\\" in sql:
        readings.append(_BACKSLASH)
    if _ORACLE_HINT.search(sql):
        readings.append(_ORACLE)
    if len(readings) > 1:
        # The database read every literal to its end (a statement that ran had none open): a
        # reading that leaves one open is not its reading, unless every reading does (a cut).
        readings = [scanner for scanner in readings if not _leaves_open(scanner, sql)] or readings
    texts = {scanner.sub(_token, sql) for scanner in readings}
    if len(texts) == 1:
        return texts.pop()
    return _masked(sql, readings)


def _normalise(sql: str) -> str:
    # A cut inside a literal leaves it open, and an open literal runs to the end: nothing leaks.
    text = _scan(sql[:MAX_INPUT_CHARS])
    text = _UNARY_MINUS.sub(r"\1", text)
    text = _IN_LIST.sub(r"\1 (...)", text)
    text = _VALUES_ROWS.sub(r"\1 (...)", text).strip()
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[: MAX_OUTPUT_CHARS - 1] + "…"
    return text


_normalise_short = lru_cache(maxsize=4096)(_normalise)


def normalise_statement(sql: str) -> str:
    """The statement as it may be stored and shown: no literal or parameter value survives."""
    if not isinstance(sql, str):
        return _NOT_TEXT
    return _normalise_short(sql) if len(sql) <= _CACHED_CHARS else _normalise(sql)


def statement_id(normalised: str) -> str:
    """A short id for a normalised statement, the same in every process and every release."""
    data = normalised.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=6).hexdigest()
