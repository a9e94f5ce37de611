"""A storage URL as people may see it (every secret hidden) and a study name as files may use it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode

from autotune.errors import UserError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a study name is used as a file and folder name
# Query parameters of a storage URL that carry secrets (libpq's and the drivers' names).
_SECRET_KEYS = ("password", "passwd", "pass", "sslpassword", "secret", "token")


def mask_url(url: str) -> str:
    """The storage URL with every secret hidden: the password (whatever it contains) and secret query parameters.
    Never printed, logged or written any other way."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, qsep, query = rest.partition("?")
    at = rest.rfind("@")  # a host has no '@': everything before the last one is user[:password]
    if at >= 0 and ":" in rest[:at]:
        rest = rest[: rest.index(":")] + ":***" + rest[at:]
    if qsep:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() in _SECRET_KEYS else v) for k, v in pairs], safe="*/:")
    return f"{scheme}://{rest}{qsep}{query}"


def secrets_of(url: str) -> list[str]:
    """The secret strings inside a URL (raw and percent-decoded), to scrub from any text."""
    _, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    found = []
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        found.append(rest[rest.index(":") + 1 : at])
    found += [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() in _SECRET_KEYS]
    out = set()
    for s in found:
        if s:
            out.update({s, unquote(s)})
    return sorted(out, key=len, reverse=True)


def mask_text(text: str, url: str) -> str:
    """`text` (an error message, say) with the URL masked and its secrets replaced wherever they appear."""
    text = text.replace(url, mask_url(url))
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return text


def check_study_name(name: str) -> str:
    """A study name is part of file and folder names (profiles/<name>.yaml, reports/<name>/): letters, digits,
    '.', '_' and '-', starting with a letter or digit, at most 100 characters."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = name if len(str(name)) <= 40 else f"{str(name)[:40]}..."
        raise UserError(
            f"study name {shown!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it names files under profiles/ and reports/)"
        )
    return name
