"""`init` all or nothing: a failed init leaves no database, config or folder behind.

A project folder may exist before `init` (empty, or holding the user's other files); only what
this `init` made is removed again, so a refused second `init` never touches the first project.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.config import CONFIG_FILE
from agent.store.opening import STORE_FILE
from agent.store.sqlite import DB_FILE

OWN_FILES = (
    DB_FILE,
    f"{DB_FILE}-wal",
    f"{DB_FILE}-shm",
    f"{DB_FILE}-journal",
    CONFIG_FILE,
    f"{CONFIG_FILE}.partial",
    STORE_FILE,
    f"{STORE_FILE}.partial",
)


@contextmanager
def new_project(folder: Path) -> Iterator[None]:
    """On any failure inside, remove the files of `OWN_FILES` that were not there before and
    the folders made for them (innermost first); then re-raise."""
    made: list[Path] = []  # the folders this init makes, outermost last
    for path in (folder, *folder.parents):
        if path.exists():
            break
        made.append(path)
    before = {name for name in OWN_FILES if (folder / name).exists()} if not made else set()
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            for name in OWN_FILES:
                if name not in before:
                    (folder / name).unlink(missing_ok=True)
            for path in made:
                path.rmdir()
        raise
