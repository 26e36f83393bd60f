"""The Ray engine: embedding and pool scoring as Ray Data `map_batches` over the local engine's
batch functions, on a Ray instance started here or on an existing cluster.

Ray is imported when this engine is built, never before: `--engine ray` without Ray installed
is one EngineError line. Workers build the embedder from its name (`make_embedder`), once per
worker process, so no loaded model is pickled; the committee (a few small arrays) travels with
the scoring tasks. Results come back to the caller, which writes the vector cache itself, so
the cache, resume and the store work as with the local engine. Workers run the driver's own
labelagent code: a started instance searches the driver's source folder, a cluster gets the
`agent` package shipped in its runtime environment (its other dependencies must be installed
on the nodes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from agent.embed.batch import embed_batch
from agent.embed.factory import make_embedder
from agent.embed.protocol import Embedder
from agent.errors import ConfigError, EngineError
from agent.learn.committee import Committee
from agent.learn.pool_scores import PoolScores, blocks, collect_scores, score_batch

INSTALL_HINT = "pip install 'labelagent[ray]'"
AGENT_DIR = Path(__file__).resolve().parent.parent  # the `agent` package the driver runs
_LOADED: dict[str, Embedder] = {}  # per worker process: embedders built from their names


def import_ray() -> Any:
    """The `ray` module with Ray Data, or one EngineError line saying how to install it."""
    try:
        import ray
        import ray.data  # the data extra, not just ray core
    except ImportError as exc:
        raise EngineError(
            f"--engine ray needs Ray Data, which is not installed ({exc.name or exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return ray


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray: start a local instance (address None) or join the cluster
    at `address` ("auto", "ray://host:port"). False when Ray was already running here."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address is None:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                job_config=ray.job_config.JobConfig(code_search_path=[str(AGENT_DIR.parent)]),
                **quiet,
            )
        else:
            runtime_env = {"py_modules": [str(AGENT_DIR)], "excludes": ["__pycache__"]}
            ray.init(address=address, runtime_env=runtime_env, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise EngineError(f"cannot start or reach {where}: {exc}") from None
    _quiet_ray_data(ray)
    return True


def _quiet_ray_data(ray: Any) -> None:
    """No Ray Data progress bars or INFO lines: the run draws its own bar on stderr."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def portable_name(embedder: Embedder) -> str:
    """The name a worker rebuilds `embedder` from; refuses one that `make_embedder` cannot
    rebuild as the same embedder (a custom object), since its vectors would differ."""
    try:
        rebuilt: Embedder | None = make_embedder(embedder.name)
    except ConfigError:
        rebuilt = None
    if rebuilt is None or type(rebuilt) is not type(embedder) or rebuilt.name != embedder.name:
        raise EngineError(
            f"embedder '{embedder.name}' ({type(embedder).__name__}) cannot be rebuilt from its "
            "name on Ray workers; configure it by name (embedding_model) or use the local engine"
        )
    return embedder.name


def embed_named(batch: Mapping[str, np.ndarray], name: str, batch_size: int) -> dict[str, Any]:
    """`embed_batch` with the embedder built from `name` in this worker (once per process)."""
    embedder = _LOADED.get(name)
    if embedder is None:
        embedder = _LOADED[name] = make_embedder(name)
    return embed_batch(batch, embedder, batch_size)


class RayEngine:
    """Ray Data over the batch functions; shuts down at `close` the Ray instance it started."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self._ray = import_ray()
        self._started = False
        self._connected = False

    def _data(self) -> Any:
        """`ray.data`, connecting on first use."""
        if not self._connected:
            self._started = start_ray(self.address, self.num_cpus)
            self._connected = True
        return self._ray.data

    def embed_chunks(
        self, embedder: Embedder, chunks: Iterable[Mapping[str, np.ndarray]], batch_size: int
    ) -> Iterator[Mapping[str, np.ndarray]]:
        name = portable_name(embedder)
        tables = [
            pa.table({"hash": pa.array(list(c["hash"]), pa.string()),
                      "text": pa.array(list(c["text"]), pa.string())})
            for c in chunks
        ]  # fmt: skip
        if not tables:
            return iter(())
        dataset = self._data().from_arrow(tables).map_batches(
            embed_named,
            fn_kwargs={"name": name, "batch_size": batch_size},
            batch_size=None,  # one batch per block: the chunks the local engine embeds
            batch_format="numpy",
        )
        return dataset.iter_batches(batch_size=None, batch_format="numpy")

    def score(
        self, committee: Committee, vectors: np.ndarray, label_vectors: np.ndarray
    ) -> PoolScores:
        n_members, n_classes = committee.members_coef_.shape[0], committee.n_classes_
        if len(vectors) == 0:
            return collect_scores(0, [], n_members, n_classes)
        data = self._data()
        from ray.data.extensions import ArrowTensorArray

        tables = [
            pa.table({"row": b["row"], "vector": ArrowTensorArray.from_numpy(b["vector"])})
            for b in blocks(np.asarray(vectors, dtype=np.float32))
        ]
        dataset = data.from_arrow(tables).map_batches(
            score_batch,
            fn_kwargs={"committee": committee, "label_vectors": label_vectors},
            batch_size=None,
            batch_format="numpy",
        )
        scored = dataset.iter_batches(batch_size=None, batch_format="numpy")
        return collect_scores(len(vectors), scored, n_members, n_classes)

    def close(self) -> None:
        """Shut down the Ray instance this engine started (not one it found running)."""
        if self._started:
            self._ray.shutdown()
        self._started = self._connected = False
