"""SQLAlchemy engines for the databases Airloop is given: the driver check, URL repair, safe errors.

Every engine over a URL from the settings or a connection is created by :func:`create_engine`,
so a dialect whose driver is missing ends in one clear message naming what to install
(``mysql://`` without ``mysqlclient``), and no error it raises carries the URL's password.
:func:`check_database_url` runs the same check without SQLAlchemy (settings validation).
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from airloop.core.redaction import redact_text, redact_url, url_secrets

# dialect[+driver] -> (the DBAPI module SQLAlchemy imports, what to install for it). Airloop is
# tested on SQLite and PostgreSQL; the others get as far as SQLAlchemy takes them.
DRIVERS: dict[str, tuple[str, str]] = {
    "sqlite": ("sqlite3", "a Python built with sqlite3"),
    "sqlite+pysqlite": ("sqlite3", "a Python built with sqlite3"),
    "postgresql": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg2": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg": ("psycopg", "psycopg[binary]"),
    "postgresql+pg8000": ("pg8000", "pg8000"),
    "mysql": ("MySQLdb", "mysqlclient (or use mysql+pymysql:// with PyMySQL)"),
    "mysql+mysqldb": ("MySQLdb", "mysqlclient"),
    "mysql+pymysql": ("pymysql", "PyMySQL"),
    "mysql+mysqlconnector": ("mysql.connector", "mysql-connector-python"),
    "mariadb": ("MySQLdb", "mysqlclient"),
    "mariadb+mariadbconnector": ("mariadb", "mariadb"),
    "mssql": ("pyodbc", "pyodbc"),
    "mssql+pyodbc": ("pyodbc", "pyodbc"),
    "mssql+pymssql": ("pymssql", "pymssql"),
    "oracle+oracledb": ("oracledb", "oracledb"),
}
# Names SQLAlchemy 2 no longer knows, with the one it wants.
RENAMED = {"postgres": "postgresql"}
_DIALECT = re.compile(r"([A-Za-z][A-Za-z0-9_]*(?:\+[A-Za-z0-9_]+)?)://")


class DatabaseURLError(ValueError):
    """A database URL Airloop cannot open; the message names it (redacted) and what to do."""


class DatabaseDriverMissing(DatabaseURLError):
    """The URL's dialect needs a DBAPI driver that is not installed; the message names the package."""


def dialect_of(url: str) -> str:
    """``postgresql+psycopg`` of ``postgresql+psycopg://...`` (lower case), or "" without one."""
    match = _DIALECT.match(url)
    return match.group(1).lower() if match else ""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package ("mysql" of "mysql.connector")
        return False


def check_database_url(url: str, variable: str | None = None) -> None:
    """Refuse a database URL Airloop cannot open, with a message naming what to do.

    :param variable: the setting the URL came from (named in the message).
    :raises DatabaseDriverMissing: the dialect's driver is not installed.
    :raises DatabaseURLError: not a SQLAlchemy URL, or a dialect name SQLAlchemy 2 dropped.
    """
    where = f"{variable}={redact_url(url)}" if variable else redact_url(url)
    dialect = dialect_of(url)
    if not dialect:
        raise DatabaseURLError(
            f"{where} is not a SQLAlchemy URL: use sqlite:////absolute/path.db or "
            "postgresql+psycopg://user@host:5432/db"
        )
    name = dialect.split("+", 1)[0]
    if name in RENAMED:
        raise DatabaseURLError(f"{where}: SQLAlchemy names this database {RENAMED[name]}://, not {name}://")
    if dialect in DRIVERS:
        module, package = DRIVERS[dialect]
        if not _installed(module):
            raise DatabaseDriverMissing(
                f"{where} needs the {module} driver for {dialect}://, which is not installed: "
                f"pip install {package}"
            )


def sqlalchemy_url(url: str):
    """``url`` as a SQLAlchemy ``URL``, with an unencoded ``@`` in the password kept in the password.

    SQLAlchemy ends the password at the first ``@``, so ``user:p@ss@host`` would connect to the
    host ``ss@host`` and echo the password's tail in the driver's error; an RFC 3986 reader
    (and :func:`~airloop.core.redaction.redact_url`) ends it at the last one.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.host and "@" in parsed.host:
        rest, host = parsed.host.rsplit("@", 1)
        parsed = parsed.set(password=f"{parsed.password or ''}@{rest}", host=host)
    return parsed


def create_engine(url: str, **kwargs: Any):
    """``sqlalchemy.create_engine(url, **kwargs)`` with the driver checked and errors redacted.

    :raises DatabaseDriverMissing: the dialect's driver is not installed (names the package).
    :raises DatabaseURLError: SQLAlchemy cannot read the URL or has no such dialect.
    """
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    check_database_url(url)
    shown = redact_url(url)
    try:
        return sqlalchemy.create_engine(sqlalchemy_url(url), **kwargs)
    except NoSuchModuleError:
        raise DatabaseURLError(
            f"{shown}: SQLAlchemy has no dialect {dialect_of(url)!r} (Airloop runs on sqlite:// and postgresql://)"
        ) from None
    except ImportError as exc:
        raise DatabaseDriverMissing(
            f"{shown} needs the {exc.name or 'DBAPI'} driver for {dialect_of(url)}://, which is not installed: "
            f"pip install the package that provides it"
        ) from None
    except (ArgumentError, ValueError) as exc:
        reason = redact_text(str(exc), secrets=url_secrets(url))
        raise DatabaseURLError(f"{shown} is not a usable SQLAlchemy URL: {reason}") from None
