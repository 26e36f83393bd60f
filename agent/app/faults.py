"""Errors from the world outside (the file system, decoding, the database) as one line each.

The CLI's single edge (`cli.friendly`) asks `describe` for the line; code that touches a path
wraps the touch in `naming(path)` so the line can name it even where the OS did not (a
`write()` that hits a full disk carries no file name). Every line says what to do next.
"""

from __future__ import annotations

import errno
import sqlite3
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import InputError
from agent.store.sqlite import DB_FILE

# errno -> (what happened, what to do); the default names the OS's own words.
_OS_HINTS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "check the permissions of this path and its folder"),
    errno.EPERM: ("operation not permitted", "check the permissions of this path"),
    errno.EISDIR: ("is a folder, not a file", "give the path of a file"),
    errno.ENOTDIR: ("a part of this path is a file, not a folder", "fix the path"),
    errno.ENOENT: ("no such file or folder (did it vanish?)", "check the path and run again"),
    errno.ENOSPC: ("no space left on the device", "free some space and run again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space and run again"),
    errno.EROFS: ("read-only file system", "choose a place you can write to"),
    errno.EEXIST: ("already exists and is in the way", "move it away or choose another path"),
    errno.ENAMETOOLONG: ("name too long", "use a shorter path"),
    errno.ELOOP: ("too many symbolic links", "fix the link"),
    errno.EMFILE: ("too many open files", "close some programs or raise the limit (ulimit -n)"),
    errno.EIO: ("input/output error", "check the disk, then run again"),
    errno.ENXIO: ("no such device", "give the path of a regular file"),
}

# sqlite message fragment -> (what happened, what to do)
_DB_HINTS: tuple[tuple[str, str, str], ...] = (
    ("locked", "the database is busy", "another labelagent command is writing; run again soon"),
    ("busy", "the database is busy", "another labelagent command is writing; run again soon"),
    ("full", "no space left for the database", "free some space and run again"),
    ("readonly", "the database cannot be written", "check the permissions of the project"),
    ("unable to open", "cannot open the database file",
     "check that the project folder and its files are readable and writable"),
    ("disk i/o", "disk I/O error on the database",
     "check the disk and that project.sqlite-wal and -shm are plain files"),
    ("malformed", "the database is damaged", "restore the project from a backup"),
    ("could not decode", "the database is damaged", "restore the project from a backup"),
    ("not a database", "not a labelagent database", "check the project path"),
)  # fmt: skip


def describe(exc: BaseException, project: Path | None) -> str | None:
    """One line for an error from outside the tool, or None for an error this module does not
    know (a bug). Where the error names no path, the line names `project` (or its database)."""
    where = None if project is None else str(project)
    if isinstance(exc, OSError):
        return _os_line(exc, where)
    if isinstance(exc, sqlite3.Error):
        return _db_line(exc, None if project is None else str(project / DB_FILE))
    if isinstance(exc, UnicodeError):
        place = f"{where}: " if where else ""
        return f"{place}cannot decode text ({exc}); save the file as UTF-8 and run again"
    return None


def _os_line(exc: OSError, where: str | None) -> str:
    path = exc.filename if exc.filename is not None else where
    what, todo = _OS_HINTS.get(exc.errno or -1, (_os_words(exc), "check this path and run again"))
    line = f"{what}; {todo}"
    if exc.filename2 is not None:
        line = f"{line} (with {exc.filename2})"
    return f"{path}: {line}" if path is not None else line


def _os_words(exc: OSError) -> str:
    words = exc.strerror or str(exc) or type(exc).__name__
    return words[:1].lower() + words[1:]


def _db_line(exc: sqlite3.Error, where: str | None) -> str:
    text = str(exc).lower()
    what, todo = next(
        ((w, t) for key, w, t in _DB_HINTS if key in text),
        (f"database error ({exc})", "check the project, then run again"),
    )
    return f"{where or 'project database'}: {what}; {todo}"


def one_line(message: str) -> str:
    """`message` on one printable line: control, separator and surrogate characters (a line
    break in user data, an escape sequence, undecodable bytes) are written as escapes."""
    return "".join(
        ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")
        else ch
        for ch in message
    )


@contextmanager
def naming(path: Path | str) -> Iterator[None]:
    """Inside: an OSError without a file name gets `path`; a decoding error becomes an
    InputError naming `path`."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def regular_file(path: Path) -> None:
    """Refuse (InputError naming `path`) what is not an existing regular file to read: a
    missing path, a folder, a pipe or device (which would block or never end)."""
    if path.is_file():
        return
    if path.is_dir():
        raise InputError("is a folder, not a file", file=str(path))
    if path.exists():
        raise InputError("not a regular file (a pipe, device or socket)", file=str(path))
    raise InputError("no such file", file=str(path))
