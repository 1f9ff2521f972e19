"""Hiding secrets: what counts as one, and how URLs, settings and log lines show it.

Every place runnel shows a backend URL or a setting (log lines, reprs, error messages)
goes through this module, so one list decides what is secret:

* the password of a URL's user info (``redis://user:pw@host``), and the user info as a
  whole when it has no ``:`` (``redis://pw@host``: some write the password there), unless
  the password is known to be given elsewhere;
* every query parameter named like a secret (:func:`is_secret_name`): ``password``,
  ``ssl_password`` (the passphrase of an encrypted TLS client key), ``token``,
  ``api_key``, ``secret`` and the like;
* and, in free text such as a log line, every secret value the settings hold
  (:func:`scrub`), however it is written (as given or percent-encoded).

Example:
    >>> redact_url("rediss://app:pw@h:6380/0?ssl_password=kp&ssl_ca_certs=/ca.pem")
    'rediss://app:***@h:6380/0?ssl_password=***&ssl_ca_certs=/ca.pem'
    >>> scrub("AUTH app s3cret-pw failed", ["s3cret-pw"])
    'AUTH app *** failed'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK: Final = "***"
"""What a secret is replaced with."""

SECRET_WORDS: Final = frozenset(
    {
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "pass",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "token",
    }
)
"""A parameter is secret when one of the words of its name is one of these."""

SECRET_PARTS: Final = ("passw", "passphrase", "secret", "token", "apikey", "credential")
"""A parameter is secret when its name, words run together, contains one of these."""

MIN_SCRUBBED: Final = 3
"""Shorter secret values are not searched for in free text: masking every ``a`` or ``12``
of a log line would hide everything and protect nothing."""


def is_secret_name(name: str) -> bool:
    """Whether a parameter called ``name`` (as written in a URL, any case) holds a secret.

    Example:
        >>> [is_secret_name(n) for n in ("ssl_password", "API-Key", "ssl_keyfile", "db")]
        [True, True, False, False]
    """
    text = unquote_plus(name).strip().lower()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w]
    if any(w in SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    return any(part in joined for part in SECRET_PARTS)


# A query parameter anywhere in the URL, as redis-py reads it from the query string
# (``?password=...``). The value runs to the next ``&``: stopping at a ``#`` or ``;`` could
# show the rest of a password that contains one.
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^?&;=#]*)=(?P<value>[^&]*)")


def redact_url(url: str, user_is_public: bool = False) -> str:
    """``url`` with every secret in it replaced by ``***`` (safe to log and show).

    Args:
        url: any backend URL, valid or not.
        user_is_public: show a user name that comes without a password (the password
            is given elsewhere, e.g. ``RUNNEL_REDIS_PASSWORD``); otherwise such a lone
            user info is hidden too, since some write the password there.

    Example:
        >>> redact_url("redis://h:6379/0?password=pw&db=1")
        'redis://h:6379/0?password=***&db=1'
        >>> redact_url("redis://pw@h"), redact_url("redis://worker@h", user_is_public=True)
        ('redis://***@h', 'redis://worker@h')
    """
    return _redact_userinfo(_redact_query(url), user_is_public)


def _redact_query(url: str) -> str:
    def hide(match: re.Match[str]) -> str:
        if not is_secret_name(match["name"]):
            return match[0]
        return f"{match['sep']}{match['name']}={MASK}"

    return _QUERY_PARAM.sub(hide, url)


def _redact_userinfo(url: str, user_is_public: bool) -> str:
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}://" if sep else ""
    # Without a scheme (a common typo), everything before the last "@" may be credentials;
    # the last "@" also covers a password that contains "@", "/" or "?" unescaped.
    creds, host = (rest if sep else url).rsplit("@", 1)
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{prefix}{user}:{MASK}@{host}" if user else f"{prefix}{MASK}@{host}"
    if user_is_public and sep:
        return url
    return f"{prefix}{MASK}@{host}"


def url_secrets(url: str, user_is_public: bool = False) -> list[str]:
    """The secret values written in ``url``, as :func:`redact_url` would hide them.

    Example:
        >>> url_secrets("rediss://u:p%40ss@h/0?ssl_password=kp")
        ['p@ss', 'kp']
    """
    found: list[str] = []
    _, sep, rest = url.partition("://")
    head = (rest if sep else url).rsplit("@", 1)
    if len(head) == 2:
        creds = head[0]
        if ":" in creds:
            found.append(unquote(creds.split(":", 1)[1]))
        elif not (user_is_public and sep):
            found.append(unquote(creds))
    for match in _QUERY_PARAM.finditer(url):
        if is_secret_name(match["name"]):
            found.append(unquote_plus(match["value"]))
    return [s for s in found if s]


def spellings(secret: str) -> set[str]:
    """The ways ``secret`` may be written in text: as is and percent-encoded.

    Example:
        >>> sorted(spellings("a b/c"))
        ['a b/c', 'a%20b%2Fc', 'a+b%2Fc']
    """
    return {secret, quote(secret, safe=""), quote_plus(secret, safe="")}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every spelling of every secret (of 3 characters or more) masked.

    Example:
        >>> scrub("url redis://:p%40ss@h and p@ss", ["p@ss"])
        'url redis://:***@h and ***'
    """
    for secret in sorted({s for v in secrets for s in spellings(v)}, key=len, reverse=True):
        if len(secret) >= MIN_SCRUBBED and secret in text:
            text = text.replace(secret, MASK)
    return text
