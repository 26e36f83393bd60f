"""Derived model files (ONNX int8 graphs, distilled static models) built once and kept on disk.

A derived model is built from a local sentence-transformers model at first use and cached in a
user folder, `$LABELAGENT_CACHE_DIR`, else `$XDG_CACHE_HOME/labelagent`, else
`~/.cache/labelagent`. Its folder name is keyed by the recipe, a fingerprint of the source model
files and the versions of the packages that built it, so an upgrade builds a fresh one instead of
reusing a stale one. Building takes a file lock and lands by an atomic rename of a finished
temporary folder, so two processes starting at once build it once and never see half a folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.errors import EmbeddingError

CACHE_ENV = "LABELAGENT_CACHE_DIR"


def cache_root() -> Path:
    """The user cache folder for derived models (not created here)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "labelagent"


def artifact_key(recipe: str, model_path: str | Path, packages: Iterable[str]) -> str:
    """A folder name: the recipe, plus a short hash of the model files and package versions."""
    digest = hashlib.sha256(recipe.encode())
    for path in sorted(Path(model_path).rglob("*")):
        if path.is_file():  # names and sizes: cheap, and any re-release changes them
            digest.update(f"{path.relative_to(model_path)}:{path.stat().st_size}".encode())
    for package in sorted(packages):
        digest.update(f"{package}=={_version(package)}".encode())
    return f"{recipe}-{digest.hexdigest()[:16]}"


def cached_artifact(key: str, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """The folder `root/key`, calling `build(tmp_folder)` to fill it when it is missing.

    Concurrent callers wait on one lock; whoever gets it second finds the folder done.
    """
    from filelock import FileLock

    root = root or cache_root()
    target = root / key
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):
        if target.is_dir():  # built by another process while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            build(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is the user's, readable
            os.replace(tmp, target)  # atomic on one filesystem: all or nothing
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def require_packages(purpose: str, *modules: str) -> None:
    """Raise one EmbeddingError line naming the missing module and the extra that installs it."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise EmbeddingError(
            f"{purpose} needs {', '.join(missing)}: pip install 'labelagent[fast]'"
        )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
