"""A PostgreSQL project's address: a libpq URL plus the project's name, never a password.

    postgresql://USER@HOST:PORT/DATABASE?project=NAME

Everything but `project` is libpq's own (host, port, database, sslmode=..., a unix socket as
`host=/run/postgresql`), handed to the driver untouched. Each project lives in its own schema
NAME of the database, so one database holds many projects. The password comes the ways libpq
looks for it (PGPASSWORD, ~/.pgpass, a service file); one written in the URL is used to
connect but never saved in the project folder nor shown in a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from agent.errors import StoreError

SCHEMES = ("postgresql", "postgres")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED = ("public", "information_schema")


@dataclass(frozen=True)
class ProjectURL:
    """Where a project lives: libpq's connection URL (password included, if one was given)
    and the schema that holds the project."""

    conninfo: str
    project: str

    @property
    def saved(self) -> str:
        """The URL to keep in the project folder and to name in messages: the project named,
        no password."""
        return _with_project(_without_password(self.conninfo), self.project)

    @property
    def has_password(self) -> bool:
        return _split_userinfo(urlsplit(self.conninfo).netloc)[1] is not None


def is_postgres_url(text: str) -> bool:
    """Whether `text` names a PostgreSQL server (postgresql:// or postgres://)."""
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def parse_url(text: str, default_project: str | None = None) -> ProjectURL:
    """The URL's connection part and project; the project from `?project=NAME`, else
    `default_project` (a folder's name, made a valid schema name). StoreError, one line, when
    the URL or the name is unusable."""
    if not is_postgres_url(text):
        raise StoreError(
            f"not a PostgreSQL URL: {_redact(text)!r}; write postgresql://USER@HOST/DB"
        )
    parts = urlsplit(text)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == "project"]
    rest = [(k, v) for k, v in query if k != "project"]
    if len(names) > 1:
        raise StoreError(f"{_redact(text)}: name the project once (?project=NAME)")
    if names:
        project = check_project_name(names[0], _redact(text))
    elif default_project is not None:
        project = schema_name(default_project)
    else:
        raise StoreError(f"{_redact(text)}: no project named; add ?project=NAME to the URL")
    conninfo = urlunsplit(parts._replace(query=urlencode(rest), fragment=""))
    return ProjectURL(conninfo, project)


def check_project_name(name: str, where: str) -> str:
    """`name` when it can be a project's schema: lower-case letters, digits and _, not
    starting with a digit, at most 63 characters, not one of PostgreSQL's own."""
    if not _NAME.fullmatch(name) or name in _RESERVED or name.startswith("pg_"):
        raise StoreError(
            f"{where}: {name!r} cannot name a project; use lower-case letters, digits and _ "
            "(at most 63, not starting with a digit, not 'public' or pg_...)"
        )
    return name


def schema_name(folder_name: str) -> str:
    """A valid project name made from a folder's name ('My Project-2' -> 'my_project_2')."""
    name = re.sub(r"[^a-z0-9_]+", "_", folder_name.lower()).strip("_")[:63] or "project"
    if name[0].isdigit() or name in _RESERVED or name.startswith("pg_"):
        name = f"la_{name}"[:63]
    return name


def _split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """(user, password, hosts) of a URL's netloc; None where absent."""
    if "@" not in netloc:
        return None, None, netloc
    userinfo, hosts = netloc.rsplit("@", 1)
    user, sep, password = userinfo.partition(":")
    return user, (password if sep else None), hosts


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    user, _, hosts = _split_userinfo(parts.netloc)
    netloc = f"{user}@{hosts}" if user is not None else hosts
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


def _with_project(url: str, project: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("project", project)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _redact(text: str) -> str:
    """`text` with any password in it replaced by ***, for messages."""
    try:
        parts = urlsplit(text)
        user, password, hosts = _split_userinfo(parts.netloc)
    except ValueError:
        return "<unreadable URL>"
    if password is not None:
        parts = parts._replace(netloc=f"{user}:***@{hosts}")
    query = [
        (k, "***" if k == "password" else unquote(v))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*/")))
