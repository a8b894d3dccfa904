"""Credentials never printed: one redaction for every URL, DSN and message Airloop shows or stores.

Every URL, DSN and error message that may carry a credential goes through :func:`redact_url` or
:func:`redact_text` before it reaches a log, an exception, a manifest, a notification or a page.
Both are total: hostile input (an unencoded ``@``, ``:`` or ``/`` in a password, a password in
the query string, a value that is not even a string) never raises and never comes back
unredacted; what cannot be read as a URL is replaced whole. :func:`url_secrets` lists a URL's
credentials, for masking them wherever a driver's own message may echo them.
"""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import unquote

REDACTED = "***"
UNPARSABLE_URL = "<redacted URL>"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(//)?")
# Query-string and ``NAME=value`` names whose value is a credential (compared without case or
# punctuation, so ``X-Amz-Signature``, ``AWS_SECRET_ACCESS_KEY`` and ``sslpassword`` all match).
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential", "signature",
                 "apikey", "accesskey", "privatekey", "secretkey", "fernetkey", "sessionkey", "authorization")  # fmt: skip
_SECRET_NAMES = {"pwd", "pass", "key", "sig", "auth"}
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_PAIR_IN_TEXT = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<sep>["']?[ \t]*[:=][ \t]*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s"']+)"""
)
_AUTH_IN_TEXT = re.compile(r"""(?i)\b(Bearer|Basic)(\s+)[A-Za-z0-9\-._~+/]+=*""")
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def is_secret_name(name: str) -> bool:
    """Whether a parameter or variable called ``name`` holds a credential (``password``, ``api_key`` ...)."""
    flat = re.sub(r"[^a-z0-9]", "", unquote(name).lower())
    return flat in _SECRET_NAMES or any(word in flat for word in _SECRET_WORDS)


def redact_url(url: object) -> str:
    """``url`` with every credential replaced by ``***``: safe for logs, errors, manifests and pages.

    Masks the password of the userinfo (everything up to the *last* ``@`` before the host, so an
    unencoded ``@``, ``:`` or ``/`` in a password is masked whole) and the value of every query or
    fragment parameter named like a credential (``password``, ``token``, ``secret``, ``key``,
    ``access_key``, ``sslpassword``, ``X-Amz-Signature`` ..., any case). Works for SQLAlchemy,
    psycopg, redis, amqp, s3 and http URLs alike; a libpq ``key=value`` DSN has its secret values
    masked. Never raises: a value that cannot be read as a URL comes back as ``<redacted URL>``.
    """
    try:
        return _redact_url(url if isinstance(url, str) else str(url))
    except Exception:  # a hostile value must neither raise here nor leak through a fallback
        return UNPARSABLE_URL


def _redact_url(url: str) -> str:
    scheme = _SCHEME.match(url)
    if scheme is None:
        # A libpq keyword DSN ("host=db password=...") or a path; anything else (an '@' or a
        # space without "name=" pairs) may hide a credential this cannot locate.
        if "=" in url and "@" not in url:
            return _redact_pairs(url)
        return url if not any(ch == "@" or ch.isspace() or not ch.isprintable() for ch in url) else UNPARSABLE_URL
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        # Not a URL any client would accept: its parts cannot be told apart safely.
        return f"{scheme.group(0).rstrip('/:')}://{REDACTED}" if scheme.group(1) else UNPARSABLE_URL
    prefix, rest = url[: scheme.end()], url[scheme.end() :]
    if scheme.group(1) is None:  # "user:password@host" without "//" reads as scheme "user"
        at = rest.rfind("@")
        return prefix + (f"{REDACTED}@{_redact_tail(rest[at + 1:])}" if at >= 0 else _redact_tail(rest))
    at = None if rest.startswith("/") else _userinfo_end(rest)
    if at is None:
        host_end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0] or [len(rest)])
        authority = rest[:host_end]
        if _port_is_not_a_number(authority):  # "user:password" with the "@host" missing
            return prefix + REDACTED + _redact_tail(rest[host_end:])
        return prefix + _redact_tail(rest)
    user, colon, _ = rest[:at].partition(":")
    if colon:
        shown = f"{user}:{REDACTED}"
    else:  # a user name alone, except on the web, where it is often a token (https://TOKEN@host)
        shown = REDACTED if prefix.lower().startswith(("http", "git")) else user
    return f"{prefix}{shown}@{_redact_tail(rest[at + 1:])}"


def _userinfo_end(rest: str) -> int | None:
    """Index of the ``@`` that ends the userinfo: the last one, unless it sits in a query value."""
    query = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    for at in reversed([i for i, ch in enumerate(rest) if ch == "@"]):
        between = rest[query:at]
        # An '@' after '?' belongs to the query only when a "name=" comes first; otherwise the
        # '?' was part of an unencoded password.
        if at < query or ("=" not in between and "&" not in between):
            return at
    return None


def _port_is_not_a_number(authority: str) -> bool:
    host, colon, port = authority.rpartition(":")
    return bool(colon and port and not port.isdigit() and not authority.endswith("]"))


def _redact_tail(tail: str) -> str:
    """Host, path and parameters: mask the values of credential-named parameters."""
    start = min([i for i in (tail.find("?"), tail.find("#")) if i >= 0] or [len(tail)])
    out, masking = [tail[:start]], False
    for part in re.split(r"([?&;#])", tail[start:]):
        if part in ("?", "&", ";", "#", ""):
            out.append(part)
            continue
        name, eq, value = part.partition("=")
        if eq:
            masking = is_secret_name(name)
            out.append(f"{name}={REDACTED}" if masking and value else part)
        else:
            # No "name=": either a bare flag, or the rest of a secret value cut at an unencoded '&'.
            out.append(REDACTED if masking else part)
    return "".join(out)


def _redact_pairs(text: str) -> str:
    """Mask the values of ``NAME=value`` / ``name: value`` pairs whose name is a credential."""

    def mask(match: re.Match) -> str:
        name, sep, value = match.group("name", "sep", "value")
        if not is_secret_name(name) or (name.lower() == "key" and "=" not in sep):
            return match.group(0)  # not a credential ("key: ds" in a message is a partition key)
        if value.startswith(REDACTED) or value in ("Bearer", "Basic"):
            return match.group(0)  # masked already, or the scheme word before a masked token
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{name}{sep}{quote}{REDACTED}{quote}"

    text = _AUTH_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PAIR_IN_TEXT.sub(mask, text)
    return _AWS_KEY_ID.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_text(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` (an error message, a log line, an environment dump) with its credentials masked.

    Every URL in it goes through :func:`redact_url`; ``NAME=value`` and ``name: value`` pairs
    named like a credential (``AWS_SECRET_ACCESS_KEY=...``, ``password: ...``), ``Bearer``/``Basic``
    tokens and AWS access key ids are masked; so is every occurrence of each of ``secrets``
    (e.g. :func:`url_secrets` of the URL a driver error may echo; values under 4 characters are
    left alone, as masking them would garble the message). Never raises.
    """
    try:
        text = text if isinstance(text, str) else str(text)
        for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        pieces, last = [], 0
        for match in _URL_IN_TEXT.finditer(text):
            pieces.append(_redact_pairs(text[last : match.start()]))
            pieces.append(redact_url(match.group(0)))
            last = match.end()
        pieces.append(_redact_pairs(text[last:]))
        return "".join(pieces)
    except Exception:
        return "<message redacted: it could not be checked for credentials>"


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials in ``url`` as written and percent-decoded (for :func:`redact_text`'s ``secrets``).

    Covers the password however a parser splits it (up to the first or to the last ``@``) and the
    values of credential-named query parameters.
    """
    try:
        found: set[str] = set()
        scheme = _SCHEME.match(url)
        rest = url[scheme.end() :] if scheme else url
        at = _userinfo_end(rest) if scheme and not rest.startswith("/") else None
        if at is not None:
            password = rest[:at].partition(":")[2]
            found |= {password, password.split("@", 1)[0], *password.split("@")[1:]}
        tail = rest[at + 1 :] if at is not None else rest
        for name, value in re.findall(r"[?&;#]([^=&;#]*)=([^&;#]*)", tail):
            if is_secret_name(name):
                found.add(value)
        found |= {unquote(s) for s in found}
        return tuple(sorted(s for s in found if s))
    except Exception:
        return ()
