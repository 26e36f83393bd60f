"""`LabelingSession`: the loop's state plus the verbs a pipeline (or the review TUI) calls.

In the spirit of small-text's `query()` / `update()` pair: ask what is worth a look, give
answers, retrain, read the results. Rounds, the final pass and the batch job work on the
state underneath (`LoopState`), never on the session.

The session's LLM is the model of its config (`llm.model`) or the `llm=` argument (a model
string, or any ChatBackend); the batch job (`run_job`) builds and asks it. `results()` and
`predictions()` read the same answers the export writes (`agent.loop.results`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.batch import Engine
from agent.config import ProjectConfig
from agent.embed import Embedder
from agent.errors import InputError
from agent.llm.protocol import ChatBackend
from agent.loop.entries import llm_view, suggestion, vote_decision
from agent.loop.llm_setup import with_model
from agent.loop.multi_job import MultiReport
from agent.loop.record import HumanLabel, record_human_labels
from agent.loop.results import result_records
from agent.loop.rounds import refresh_queue
from agent.loop.state import LoopState, Scores
from agent.routing.accuracy import store_estimate
from agent.routing.sources import current_labels
from agent.store.opening import open_store
from agent.store.protocol import ProjectStore
from agent.store.sqlite import Store
from agent.types import (
    NO_LABEL,
    Annotation,
    Item,
    Kind,
    LabelSet,
    QueueView,
    Source,
    encode_label_set,
    label_set_problem,
)

__all__ = ["LabelingSession", "Scores"]


class LabelingSession(LoopState):
    """Active labelling over one store; see the module docstring."""

    # ---- construction --------------------------------------------------------------------
    def __init__(
        self,
        store: ProjectStore,
        config: ProjectConfig | None = None,
        embedder: Embedder | None = None,
        backend: ChatBackend | None = None,
        progress: bool = False,
        *,
        llm: str | ChatBackend | None = None,
        engine: Engine | None = None,
    ) -> None:
        """`llm`: a model name (as `llm.model`; 'none' switches the configured LLM off) or a
        ChatBackend; None keeps the config's model. The LLM is built when a job first needs
        it, so opening a project to read or review it needs no API key. `engine` runs the
        pool-wide work (default: the config's `engine`, "local" or "ray", at `ray_address`)."""
        config = config or ProjectConfig()
        if isinstance(llm, str):
            config = with_model(config, llm)
        elif llm is not None:
            backend = llm
        super().__init__(store, config, embedder, backend, progress, engine=engine)
        self._warned: set[str] = set()

    @classmethod
    def open(cls, folder: str | os.PathLike[str], **kwargs: Any) -> LabelingSession:
        """The session over a project folder (`labelagent init` made it); its config comes
        from the folder's labelagent.json unless `config=` is given."""
        folder = Path(folder)
        config = kwargs.pop("config", None) or ProjectConfig.load(folder)
        return cls(open_store(folder), config, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        labels: LabelSet | Sequence[str],
        ids: Sequence[str] | None = None,
        multi_label: bool = False,
        **kwargs: Any,
    ) -> LabelingSession:
        """An in-memory session for a library user with a list of texts and a label set;
        `multi_label=True` makes each item take a set of labels (`run_sets`, `submit_sets`)."""
        if multi_label:
            base = kwargs.get("config") or ProjectConfig()
            kwargs["config"] = base.model_copy(update={"task": "multi_label"})
        label_set = labels if isinstance(labels, LabelSet) else LabelSet(tuple(labels))
        store = Store.memory(label_set)
        row_ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
        if len(row_ids) != len(texts):
            raise InputError(f"{len(row_ids)} ids for {len(texts)} texts", field="ids")
        store.add_items(((i, t, None) for i, t in zip(row_ids, texts)), source_file="<memory>")
        return cls(store, **kwargs)

    def close(self) -> None:
        """Close the store, and stop the Ray instance the engine started, if it did."""
        try:
            self.engine.close()
        finally:
            self.store.close()

    # ---- library verbs -------------------------------------------------------------------
    def query(self, n: int | None = None, strategy: str | None = None) -> list[Item]:
        """The n items most worth a look now (active selection over the candidates)."""
        self._warn_llm_unused(
            "query", "query() ranks items by the classifier alone and never calls the LLM "
            "configured ({model}); run_job or arun_job pre-label with it.",
        )
        positions = self.select_positions(n or self.config.batch_size, strategy)
        return self.items_at(positions)

    def submit(
        self,
        answers: Mapping[str, str | None],
        actor: str = "library",
        round_no: int = 0,
    ) -> int:
        """Record human labels given by external id; returns how many were stored."""
        keys = self.store.keys_for_ids(list(answers))
        unknown = next((ext_id for ext_id in answers if ext_id not in keys), None)
        if unknown is not None:
            raise InputError(f"unknown item id '{unknown}'", field="id")
        labels = [HumanLabel(keys[i], label, round_no) for i, label in answers.items()]
        stored = record_human_labels(self.store, labels, actor)
        self.reload_labels()
        return len(stored)

    # ---- multi-label verbs ----------------------------------------------------------------
    @property
    def multi_label(self) -> bool:
        return self.config.task == "multi_label"

    def run_sets(
        self, rounds: int = 5, batch_size: int | None = None, human_budget: int | None = None,
        oracle: Callable[[str], Sequence[str] | None] | None = None, *,
        llm_budget: int | None = None, fresh: bool = False,
    ) -> MultiReport:  # fmt: skip
        """The multi-label job (`agent.loop.multi_job`): `oracle` answers the review queue by
        item id with a list of label names (a simulated operator; None leaves the queue);
        `llm_budget` caps paid LLM calls in all; a rerun after an interrupted run of the same
        plan finishes it, unless `fresh`."""
        from agent.labeller.multi import MultiLabeller
        from agent.loop.multi_job import MultiLimits, run_multi_job

        self._need_multi("run_sets")
        backend = self.backend
        labeller = None if backend is None else MultiLabeller(
            backend, self.label_set, self.config.llm, self.store)  # fmt: skip
        answer = None
        if oracle is not None:
            def answer(item: Item) -> str | None:
                names = oracle(item.id)
                return None if names is None else encode_label_set(names, self.label_set)
        limits = MultiLimits(rounds, batch_size or self.config.batch_size, human_budget,
                             llm_budget=llm_budget)  # fmt: skip
        return run_multi_job(self, limits, labeller, answer, fresh=fresh)

    def submit_sets(self, answers: Mapping[str, Sequence[str]], actor: str = "library") -> int:
        """Record people's label sets by external id; returns how many were stored."""
        self._need_multi("submit_sets")
        keys = self.store.keys_for_ids(list(answers))
        notes = []
        for ext_id, names in answers.items():
            problem = "unknown item id" if ext_id not in keys else label_set_problem(
                list(names), self.label_set)  # fmt: skip
            if problem:
                raise InputError(f"{problem} (item '{ext_id}')", field="labels")
            notes.append(Annotation(keys[ext_id], encode_label_set(names, self.label_set),
                                    Source.HUMAN, Kind.LABEL, actor=actor))  # fmt: skip
        return len(self.store.record_human_labels(notes, actor))

    def _need_multi(self, verb: str) -> None:
        if not self.multi_label:
            raise InputError(f"{verb}() is for multi-label sessions (multi_label=True)",
                             field="task")  # fmt: skip

    def results(self) -> list[dict[str, Any]]:
        """One dict per item, in input order, with the export's columns (`COLUMNS` of
        `agent.loop.results`): `id` is yours, labels are names, `final_label` is the answer
        the project stands behind and `label_status` says whose (human, auto, suggested,
        none). Items the project has no answer for yet (unlabelled, never queued: no job ran)
        get the session's best guess as `suggested`, as the job's final pass would queue it;
        every other row is exactly the export's. `pandas.DataFrame(session.results())` makes
        a table. A multi-label session gives `agent.loop.multi_results` records instead
        (`final_labels` a list)."""
        if self.multi_label:
            from agent.loop.multi_results import set_records

            return list(set_records(self.store))
        self._warn_if_llm_never_asked("results")
        return self._records()

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """Label names (n,) (object array; None where no label fits) and P(right) (n,) (NaN
        where unknown), in input order: the `final_label` and `final_confidence` of
        `results()`, scikit-learn style. (Earlier versions gave label indices and the
        classifier's own probability, which ignored the LLM.)"""
        self._warn_if_llm_never_asked("predictions")
        records = self._records()
        names = np.array([r["final_label"] for r in records], dtype=object)
        conf = np.array(
            [np.nan if r["final_confidence"] is None else r["final_confidence"] for r in records],
            dtype=np.float64,
        )
        return names, conf

    def _records(self) -> list[dict[str, Any]]:
        """The export's records, with best guesses where the project has no answer yet."""
        return list(result_records(self.store, self._guess_views(self._unanswered())))

    def _unanswered(self) -> list[int]:
        """Keys of the items with no label and no queue row, read from the store: after a job
        there are none, and results() then needs neither embeddings nor a retrain."""
        labelled = current_labels(self.store)
        queued = set(self.store.queued_keys())
        return [
            item.key for batch in self.store.iter_items() for item in batch
            if item.key not in labelled and item.key not in queued
        ]

    def _guess_views(self, keys: list[int]) -> dict[int, QueueView]:
        """Item key -> a pending view carrying the session's best guess, for `keys`; built by
        the same `suggestion` the review queue stores, from the numbers the final pass uses."""
        if not keys:
            return {}
        self.reload_labels()
        positions = self.pool.positions(keys)
        best, p_right = self.best_guess(), self.p_right()
        votes = self.store.latest_votes(Source.LLM.value, keys)
        return {
            key: QueueView(key, "", "pending", suggestion(
                self, int(i), llm_view(vote_decision(votes[key]) if key in votes else None),
                int(best[i]), float(1.0 - p_right[i]),
            ))
            for key, i in zip(keys, positions)
        }

    # ---- warnings when a configured LLM is not used -------------------------------------
    def _llm_configured(self) -> str | None:
        """The configured model's name, or None without an LLM."""
        if self.backend is not None:
            return self.backend.model
        return self.config.llm.model

    def _warn_llm_unused(self, verb: str, message: str, stacklevel: int = 3) -> None:
        """Warn once per verb and session that an LLM is configured but this call skips it
        (`stacklevel` points the warning at the user's line)."""
        model = self._llm_configured()
        if model is None or verb in self._warned:
            return
        self._warned.add(verb)
        warnings.warn(message.format(model=model), UserWarning, stacklevel=stacklevel)

    def _warn_if_llm_never_asked(self, verb: str) -> None:
        if verb in self._warned or self._llm_configured() is None:
            return
        if self.store.latest_votes(Source.LLM.value):
            return
        self._warn_llm_unused(
            verb, f"{verb}() answers without the LLM configured ({{model}}): it has not "
            "labelled any item yet; run_job or arun_job pre-label with it.",
            stacklevel=4,
        )

    # ---- services for the review TUI -----------------------------------------------------
    def refresh(self) -> None:
        """Retrain on the newest human labels and rewrite the pending queue's suggestions."""
        self.reload_labels()
        self.retrain()
        refresh_queue(self)
        store_estimate(self.store, self.config.routing, self.verdicts())

    def neighbours(self, item_key: int, k: int = 5) -> list[tuple[str, str, float]]:
        """The k most similar labelled items: (text, label, cosine similarity)."""
        pool = self.pool
        labelled = np.flatnonzero(pool.labels != NO_LABEL)
        if labelled.size == 0:
            return []
        sims = pool.vectors[labelled] @ pool.vectors[pool.position(item_key)]
        order = np.argsort(-sims)[:k]
        nearest = labelled[order]
        return [
            (item.text, self.label_set.names[pool.labels[i]], float(sim))
            for item, i, sim in zip(self.items_at(nearest), nearest, sims[order], strict=True)
        ]

