"""Secrets out of any text wsgimon shows, stores or sends: the one scrubber, a bottom-level module every layer may use.

:func:`without_secrets` is applied where exception messages and tracebacks enter storage (the
fold), to the request log's paths, and again at every sink (alert payloads, the report), so a
text that came from elsewhere is scrubbed too. It replaces with ``[REDACTED]``:

- URLs with credentials (``scheme://user:pass@``), Discord and Slack webhook URLs' tokens;
- ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and ``Set-Cookie`` values, ``Bearer``
  tokens and ``Basic`` credentials;
- the well-known key formats: AWS access key ids, GitHub, GitLab, Slack, Stripe, Google, OpenAI,
  npm, PyPI and SendGrid tokens, JWTs, PEM private-key blocks;
- the value of a sensitive name (password, passwd, pwd, secret, token, api_key, access_key,
  private_key, auth, credential(s), session, cookie, jwt, signature, sig, dsn, ...; any
  case, in ``snake_case``, ``kebab-case`` or ``camelCase`` compounds) in the forms
  ``name=value``, ``name: value``, ``NAME = 'value'`` and ``"name": "value"``.

A sensitive name counts only as a whole part of a key (``tokens``, ``tokenizer`` and
``/api/tokens/42`` are left alone), and a value that is a type annotation, ``None``, a boolean or
an SQL placeholder (``?``, ``%s``, ``$1``, ``:name``) is not a secret. Every pattern is linear in
the text, and the rules a text has no trigger for do not run. :func:`bounded_without_secrets`
cuts a huge text to its limit (with a margin, so that a secret cut in half goes with the margin)
before scrubbing it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

__all__ = ["REDACTED", "bounded_without_secrets", "without_passwords", "without_secrets"]

REDACTED = "[REDACTED]"
#: what :func:`bounded_without_secrets` keeps beyond its limit while scrubbing: longer than any
#: secret but a PEM block (which is scrubbed to the end of the text when its end is cut away)
_MARGIN = 4096
_MAX_VALUE = 2048

_Replace = Callable[["re.Match[str]"], "str | None"]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """``text`` lower-cased with every index kept (``str.lower`` lengthens a few characters, such as ``İ``)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _keep_head(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


# Every pattern starts with a literal (SRE then skips to its occurrences at C speed) and checks a
# word boundary, where it needs one, with a lookbehind placed after that literal.

# --- URLs ------------------------------------------------------------------------------------------
_URL_USERINFO = re.compile(r"(?P<head>://[^\s/@:'\"<>]{0,256}:)[^\s/'\"<>@]{1,512}(?:@[^\s/'\"<>@]{1,64})*@")
_HOOKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("webhooks/", re.compile(r"(/api/(?:v\d{1,2}/)?webhooks/\d{1,30}/)[\w-]{1,200}")),  # Discord's
    ("hooks.slack.com", re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/-]{1,200}")),
)

# --- well-known key formats -----------------------------------------------------------------------------
_FORMATS: tuple[re.Pattern[str], ...] = (
    re.compile(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA|SCA)(?<!\w....)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    re.compile(r"gh(?<!\wgh)[pousr]_[A-Za-z0-9]{20,255}"),
    re.compile(r"github_pat_(?<!\wgithub_pat_)[A-Za-z0-9_]{20,255}"),
    re.compile(r"glpat-(?<!\wglpat-)[\w-]{20,255}"),
    re.compile(r"xox(?<!\wxox)[abeoprs]-[A-Za-z0-9-]{10,255}"),
    re.compile(r"xapp-(?<!\wxapp-)\d-[A-Za-z0-9-]{10,255}"),
    re.compile(r"whsec_(?<!\wwhsec_)[A-Za-z0-9+/=]{20,255}"),
    re.compile(r"AIza(?<!\wAIza)[0-9A-Za-z_-]{35}"),
    re.compile(r"ya29\.(?<!\wya29\.)[0-9A-Za-z_-]{20,2048}"),
    re.compile(r"sk-(?<!\wsk-)(?:proj-|ant-[a-z0-9]{2,10}-)?[A-Za-z0-9_-]{32,255}"),
    re.compile(r"npm_(?<!\wnpm_)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    re.compile(r"pypi-(?<!\wpypi-)AgE[A-Za-z0-9_-]{50,4096}"),
    re.compile(r"SG\.(?<!\wSG\.)[\w-]{16,64}\.[\w-]{16,128}"),
    re.compile(r"eyJ(?<!\weyJ)[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,4096}"),
)

#: where one of the formats may start: searched first in a short text (one pass instead of one per format)
_FORMAT_START = re.compile(
    r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA|SCA)|gh[pousr]_|github_pat_|glpat-|xox|xapp-|whsec_|AIza|ya29\."
    r"|sk-|npm_|pypi-|SG\.|eyJ"
)
#: a text up to this long is searched with one alternation; a longer one with a find per literal
_SHORT_TEXT = 512

#: Stripe's keys keep their kind (``sk_live_[REDACTED]``): the literal first, the boundary checked after it
_STRIPE = re.compile(r"(k_(?<=[spr]k_)(?<!\w.k_)(?:live|test)_)[A-Za-z0-9]{10,255}")

# --- PEM private keys -------------------------------------------------------------------------------
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\\ \t\r\n:-,")


def _orphan_pem_end(text: str) -> str:
    """A PEM block whose beginning was cut away (the tail of a traceback): its body, up to its end line."""
    match = _PEM_END.search(text)
    if match is None:
        return text
    start = match.start()
    floor = max(0, start - 16384)
    while start > floor and text[start - 1] in _PEM_BODY:
        start -= 1
    return text[:start] + REDACTED + text[match.end() :]


# --- headers and auth schemes (matched where their lower-cased name was found) -----------------------------
_HEADER = re.compile(
    r"(authorization|cookie)((?:[\"'])?[ \t]{0,3}[:=][ \t]{0,3}[\"']?)"
    r"((?:bearer|basic|token|digest|negotiate|ntlm|aws4-hmac-sha256)[ \t]{1,3})?"
    r"(?P<value>[^\r\n\"'\\]{1,4096})",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"(bearer|basic)([ \t]{1,3})([A-Za-z0-9._~+/-]{8,4096}=*)", re.IGNORECASE)


def _header_value(match: re.Match[str]) -> str | None:
    value = match.group("value").strip()
    if value in (REDACTED, "") or _NOT_SECRET.fullmatch(value):
        return None
    return match.group(1) + match.group(2) + (match.group(3) or "") + REDACTED


def _scheme_value(match: re.Match[str]) -> str | None:
    scheme, space, token = match.group(1), match.group(2), match.group(3)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
        secret = b":" in decoded  # user:password
    else:
        secret = len(token) >= 20 or any(not char.isalpha() for char in token)
    return f"{scheme}{space}{REDACTED}" if secret else None


def _at(
    text: str, lowered: str, needles: tuple[str, ...], pattern: re.Pattern[str], replace: _Replace
) -> tuple[str, str]:
    """``pattern`` matched where a needle starts a word of ``lowered``; ``replace`` says what a match becomes
    (None: left as it is). Returns the new text and its lower-cased form."""
    starts = sorted(
        index
        for needle in needles
        for index in _occurrences(lowered, needle)
        if index == 0 or not lowered[index - 1].isalnum()
    )
    if not starts:
        return text, lowered
    parts: list[str] = []
    done = 0
    for index in starts:
        if index < done:
            continue
        match = pattern.match(text, index)
        if match is None:
            continue
        replacement = replace(match)
        if replacement is None:
            continue
        parts += (text[done:index], replacement)
        done = match.end()
    if not parts:
        return text, lowered
    parts.append(text[done:])
    text = "".join(parts)
    return text, _lower(text)


def _occurrences(lowered: str, needle: str) -> list[int]:
    found: list[int] = []
    index = lowered.find(needle)
    while index >= 0:
        found.append(index)
        index = lowered.find(needle, index + len(needle))
    return found


# --- sensitive names ----------------------------------------------------------------------------------
#: names that count with any prefix (``dbpassword``), and short ones that need a boundary before them
_LONG_NAMES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "credentials",
    "credential",
    "sessionid",
    "session",
    "cookie",
    "signature",
)
_SHORT_NAMES = ("pass", "pwd", "auth", "jwt", "sig", "dsn")
_SHORT = frozenset(_SHORT_NAMES)
#: what is searched for (each name starts with one), then which name it is
_NEEDLES = (
    *("pass", "pwd", "secret", "token", "api", "access", "private", "credential", "session", "cookie", "sig"),
    *("auth", "jwt", "dsn"),
)
_NAME = re.compile("|".join(sorted((*_LONG_NAMES, *_SHORT_NAMES), key=len, reverse=True)))
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SEPARATORS = "_.-"
_EXCEPTION_NAMES = ("Error", "Exception", "Warning", "Exit", "Interrupt")
_VALUE = re.compile(
    r"(?P<sep>[ \t]{0,3}(?<![=!<>])(?::|=(?!=))[ \t]{0,3})"
    rf"(?:'(?P<sq>[^'\r\n]{{0,{_MAX_VALUE}}})'|\"(?P<dq>[^\"\r\n]{{0,{_MAX_VALUE}}})\""
    rf"|(?P<open>['\"])?(?P<v>[^\s'\",;&<>(){{}}\[\]=|`]{{1,{_MAX_VALUE}}}))"
)
#: values that are not secrets: annotations, constants, SQL placeholders, a mask
_NOT_SECRET = re.compile(
    r"(?:str|bytes|int|bool|None|none|null|nil|true|false|True|False|Optional|Any|SecretStr|dict|list|object"
    r"|\?|%s|%\(\w+\)s|\$\d+|:\w+|\*+)",
)


def _is_key_char(char: str) -> bool:
    return char in _KEY_CHARS or (char.isalnum() and not char.isascii())


def _name_hits(lowered: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every sensitive name in ``lowered``, the longest at one start."""
    if len(lowered) <= _SHORT_TEXT:  # one pass of the alternation: less overhead than a find per needle
        return [(hit.start(), hit.end(), hit.group(0).replace("-", "_")) for hit in _NAME.finditer(lowered)]
    hits = []
    for needle in _NEEDLES:
        for index in _occurrences(lowered, needle):
            name = _NAME.match(lowered, index)
            if name is not None:
                hits.append((index, name.end(), name.group(0).replace("-", "_")))
    hits.sort()
    return hits


def _named_values(text: str, lowered: str) -> str:
    """The values of sensitive names (``password: x``, ``PASSWORD = 'x'``, ``"token": "x"``, ``api_key=x``)."""
    hits = _name_hits(lowered)
    if not hits:
        return text
    parts: list[str] = []
    done = 0  # text before this is in ``parts``
    length = len(text)
    for start, end, name in hits:
        if start < done:
            continue
        # A boundary before the name: the key's start, a separator, or a camelCase hump.
        if name in _SHORT and start > 0 and _is_key_char(text[start - 1]):
            before = text[start - 1]
            if not (before in _SEPARATORS or (text[start].isupper() and before.islower())):
                continue
        # The key goes on only after a separator or a camelCase hump (``tokens`` is another word).
        if end < length and _is_key_char(text[end]):
            after = text[end]
            if not (after in _SEPARATORS or (after.isupper() and text[end - 1].islower())):
                continue
        key_end = end
        while key_end < length and key_end - end < 80 and _is_key_char(text[key_end]):
            key_end += 1
        key_start = start
        while key_start > 0 and start - key_start < 80 and _is_key_char(text[key_start - 1]):
            key_start -= 1
        if text.endswith(_EXCEPTION_NAMES, key_start, key_end):
            continue  # ``InvalidTokenError: Signature has expired``: a type and its message
        at = key_end
        if at < length and text[at] in "'\"" and key_start > 0 and text[key_start - 1] == text[at]:
            at += 1  # the key's closing quote: "password": "x"
        found = _VALUE.match(text, at)
        if found is None:
            continue
        group = "sq" if found.group("sq") is not None else "dq" if found.group("dq") is not None else "v"
        value = found.group(group)
        if not value or value == REDACTED:
            continue
        if group == "v":
            if _NOT_SECRET.fullmatch(value):
                continue
            following = found.end()
            if following < length and text[following] in "([" and found.group("open") is None:
                continue  # code (``password = request.form["password"]``), not a value
        value_start, value_end = found.span(group)
        parts += (text[done:value_start], REDACTED)
        done = value_end
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


_EXTRA_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-[]")
_EXTRA_VALUE = re.compile(rf"""=(?P<v>[^&\s'"<>),;]{{1,{_MAX_VALUE}}})""")
_EXTRA_QUOTED = re.compile(rf"""(?P<q>['"])\s*:\s*['"](?P<v>[^'"]{{1,{_MAX_VALUE}}})(?=['"])""")


def _extra_values(text: str, lowered: str, words: tuple[str, ...]) -> str:
    """``key=value`` and ``'key': 'value'`` where the key holds one of ``words`` (the ``redact_keys``
    option: substrings of query keys, so ``api_key`` and ``sessionid`` count)."""
    starts = sorted({index for word in words if word for index in _occurrences(lowered, word)})
    if not starts:
        return text
    parts: list[str] = []
    done = 0
    length = len(text)
    key_end = -1
    for start in starts:
        if start < key_end or start < done:
            continue  # in a key already looked at
        key_end = start
        while key_end < length and key_end - start < 160 and text[key_end] in _EXTRA_KEY_CHARS:
            key_end += 1
        key_start = start
        while key_start > 0 and start - key_start < 80 and text[key_start - 1] in _EXTRA_KEY_CHARS:
            key_start -= 1
        found = _EXTRA_VALUE.match(text, key_end)
        if found is None and key_start > 0 and text[key_start - 1] in "'\"":
            quoted = _EXTRA_QUOTED.match(text, key_end)
            if quoted is not None and quoted.group("q") == text[key_start - 1]:
                found = quoted
        if found is None:
            continue
        value = found.group("v")
        if value == REDACTED or _NOT_SECRET.fullmatch(value) or found.end() < length and text[found.end()] == "(":
            continue
        parts += (text[done : found.start("v")], REDACTED)
        done = found.end("v")
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def without_secrets(text: str, extra_keys: tuple[str, ...] = ()) -> str:
    """``text`` with every secret this module knows replaced by ``[REDACTED]``.

    ``extra_keys``: more names whose ``key=value`` and ``'key': 'value'`` values are secret, matched
    as substrings of the key (the ``redact_keys`` option). Idempotent; linear in the text (bound a
    huge text with :func:`bounded_without_secrets`).
    """
    if not text:
        return text
    if "PRIVATE KEY" in text:
        text = _orphan_pem_end(_PEM.sub(REDACTED, text))
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: m.group("head") + REDACTED + "@", text)
    for needle, pattern in _HOOKS:
        if needle in text:
            text = pattern.sub(_keep_head, text)
    if len(text) > _SHORT_TEXT or _FORMAT_START.search(text):
        for pattern in _FORMATS:
            text = pattern.sub(REDACTED, text)
    if "k_live_" in text or "k_test_" in text:
        text = _STRIPE.sub(r"\g<1>" + REDACTED, text)
    lowered = _lower(text)
    text, lowered = _at(text, lowered, ("authorization", "cookie"), _HEADER, _header_value)
    text, lowered = _at(text, lowered, ("bearer", "basic"), _SCHEME, _scheme_value)
    text = _named_values(text, lowered)
    if extra_keys:
        text = _extra_values(text, _lower(text), tuple(word.lower() for word in extra_keys))
    return text


def bounded_without_secrets(text: str, limit: int, *, keep: str = "head", extra_keys: tuple[str, ...] = ()) -> str:
    """``text`` without secrets and cut to ``limit`` characters with an ellipsis (``keep="tail"``: its end).

    A huge text is cut to the limit and a margin before it is scrubbed, so the cost stays bounded;
    a secret the first cut halves lies in the margin, which the second cut removes.
    """
    if len(text) > limit + _MARGIN:
        text = text[: limit + _MARGIN] if keep == "head" else text[-(limit + _MARGIN) :]
    return _cut(without_secrets(text, extra_keys), limit, keep)


def _cut(text: str, limit: int, keep: str) -> str:
    if len(text) <= limit:
        return text
    if keep == "tail":
        return "…" + text[-(limit - 1) :] if limit > 1 else "…"
    return text[: limit - 1] + "…" if limit > 1 else "…"


def without_passwords(text: str) -> str:
    """A storage URL (or a message about one) without its credentials: ``user:***@``, ``?password=***``,
    ``sslpassword=***`` in a libpq string, and every other secret :func:`without_secrets` knows."""
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: m.group("head") + "***@", text)
    text = _STORAGE_KEYS.sub(r"\1***", text)
    return without_secrets(text).replace(REDACTED, "***")


#: a storage URL's query keys (and a libpq string's keywords) that hold credentials
_STORAGE_KEYS = re.compile(
    r"((?:^|(?<=[?&;\s]))[\w.-]{0,40}?(?:password|passwd|pwd|pass|secret|token|key|sig|auth|credential|jwt|session)"
    r"[\w.-]{0,40}=)(?!\*\*\*)[^&\s'\"]+",
    re.IGNORECASE,
)
