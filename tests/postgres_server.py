"""A real PostgreSQL server for the tests, started once per session and stopped at its end.

`initdb` into a temporary folder (trust auth, superuser `labelagent`), `pg_ctl start` on
127.0.0.1 at a free port with its unix socket in that folder. PostgreSQL refuses to run as
root, so under root the server runs as the unprivileged user `nobody` (the folder is made
theirs). Without the server binaries (on PATH or under /usr/lib/postgresql/*/bin) the tests
that need it are skipped, or fail when LABELAGENT_REQUIRE_POSTGRES=1 (CI, which installs them).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REQUIRE = "LABELAGENT_REQUIRE_POSTGRES"
USER = "labelagent"
UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and who may connect (trust: no password)."""

    port: int
    folder: Path

    def url(self, project: str | None = None) -> str:
        """A store URL on this server; a fresh project name unless one is given."""
        name = project or f"t_{uuid.uuid4().hex[:12]}"
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres?project={name}"


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's versioned folders."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _run_as() -> dict[str, Any]:
    """subprocess options that drop root for the server (initdb refuses root); {} otherwise."""
    if os.geteuid() != 0:
        return {}
    try:
        who = pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        pytest.fail(f"running as root and no user '{UNPRIVILEGED}' to run PostgreSQL as")
    return {"user": who.pw_uid, "group": who.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(args: list[str], as_user: dict[str, Any], folder: Path) -> None:
    """Run a server tool; a failure fails the session with its output and the server log."""
    done = subprocess.run(args, capture_output=True, text=True, cwd=folder, timeout=60, **as_user)
    if done.returncode != 0:
        log = folder / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr}{tail}")


def start(bin_dir: Path) -> tuple[PostgresServer, dict[str, Any]]:
    """initdb and start a server in a new temporary folder; (server, the run-as options)."""
    as_user = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="labelagent-pg-"))
    if as_user:
        os.chown(folder, as_user["user"], as_user["group"])
    _run([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER, "--auth=trust",
          "--no-locale", "-E", "UTF8", "--no-sync"], as_user, folder)  # fmt: skip
    port = _free_port()
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off"
    )
    _run([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log"),
          "-o", options, "-w", "-t", "60", "start"], as_user, folder)  # fmt: skip
    return PostgresServer(port, folder), as_user


def stop(bin_dir: Path, server: PostgresServer, as_user: dict[str, Any]) -> None:
    subprocess.run(
        [str(bin_dir / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate", "-w",
         "stop"], capture_output=True, cwd=server.folder, timeout=60, **as_user,
    )  # fmt: skip
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skipped without the binaries, unless required)."""
    bin_dir = server_binaries()
    if bin_dir is None:
        _missing("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
                 "/usr/lib/postgresql/*/bin; install Debian's 'postgresql' package")  # fmt: skip
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed; pip install -e '.[postgres]'")
    assert bin_dir is not None
    server, as_user = start(bin_dir)
    try:
        yield server
    finally:
        stop(bin_dir, server, as_user)


def _missing(what: str) -> None:
    """Skip the tests that need PostgreSQL, or fail them where they must run."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{what} ({REQUIRE}=1 says the PostgreSQL tests must run)")
    pytest.skip(what)
