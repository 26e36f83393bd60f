"""The labelling session: select -> pre-label -> route -> learn, resumable from the store.

One session serves the three front doors: the batch job (`agent.loop.job`), the review TUI
(through `refresh` and `neighbours`) and library users (`LabelingSession.from_texts`).
Everything a round decides is written to the store before the next step starts, so a
restarted session picks up where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import ProjectConfig
from agent.embed import Embedder, make_embedder
from agent.errors import InputError
from agent.learn.committee import Committee, zero_shot_proba
from agent.learn.fewshot import FewShotIndex
from agent.learn.strategies import get_strategy
from agent.llm.protocol import ChatBackend
from agent.loop.final import store_estimate
from agent.loop.pool import NO_LABEL, Pool, build_pool
from agent.loop.rounds import refresh_queue
from agent.routing.route import Votes, best_label, unlabelled_in_cell
from agent.store.sqlite import Store
from agent.types import Annotation, Item, Kind, LabelSet, QueueEntry, Source

# An oracle answers a review item with a label name, or None for "ambiguous / none fits".
Oracle = Callable[[Item, QueueEntry], "str | None"]


@dataclass(frozen=True)
class Scores:
    """The committee's view of the whole pool: probs (n, C), members (K, n, C), zero-shot (n, C)."""

    probs: np.ndarray
    members: np.ndarray
    zeroshot: np.ndarray


class LabelingSession:
    """Active labelling over one store; see the module docstring."""

    def __init__(
        self,
        store: Store,
        config: ProjectConfig | None = None,
        embedder: Embedder | None = None,
        backend: ChatBackend | None = None,
        progress: bool = False,
    ) -> None:
        self.store = store
        self.config = config or ProjectConfig()
        self.label_set: LabelSet = store.label_set
        self.embedder = embedder or make_embedder(self.config.embedding_model)
        self.backend = backend
        self.progress = progress
        self._pool: Pool | None = None
        self._committee: Committee | None = None
        self._scores: Scores | None = None
        self._cells: np.ndarray | None = None

    @property
    def labeller_mode(self) -> str:
        """'llm' when an LLM pre-labels, 'none' when the zero-shot member stands in for it."""
        return "none" if self.backend is None else "llm"

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, **kwargs: Any) -> LabelingSession:
        config = kwargs.pop("config", None) or ProjectConfig.load(folder)
        return cls(Store.open(folder), config, **kwargs)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        labels: LabelSet | Sequence[str],
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> LabelingSession:
        """An in-memory session for a library user with a list of texts and a label set."""
        label_set = labels if isinstance(labels, LabelSet) else LabelSet(tuple(labels))
        store = Store.memory(label_set)
        row_ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
        if len(row_ids) != len(texts):
            raise InputError(f"{len(row_ids)} ids for {len(texts)} texts", field="ids")
        store.add_items(((i, t, None) for i, t in zip(row_ids, texts)), source_file="<memory>")
        return cls(store, **kwargs)

    def close(self) -> None:
        self.store.close()

    # ---- state ---------------------------------------------------------------------------
    @property
    def pool(self) -> Pool:
        """Every item with its vector; built (and embedded, cached) on first use."""
        if self._pool is None or len(self._pool) != self.store.count_items():
            self._pool = build_pool(
                self.store, self.embedder, self.config.embedding_batch_size, self.progress
            )
            self._committee = self._scores = None
        return self._pool

    def reload_labels(self) -> None:
        """Pick up labels written by others (the TUI, another process) since the last look."""
        self.pool.refresh(self.store, self.label_set)

    @property
    def committee(self) -> Committee:
        if self._committee is None:
            self.retrain()
        assert self._committee is not None
        return self._committee

    def retrain(self) -> Committee:
        """Fit the committee on human-verified labels (reviews, imported gold) and, unless
        configured off, on auto-accepted LLM labels (their precision is audited)."""
        pool = self.pool
        mask = pool.human_mask
        if self.config.train_on_auto:  # audited auto-accepts: more labels, precision measured
            mask = mask | ((pool.sources == Source.LLM.value) & (pool.labels != NO_LABEL))
        committee = Committee(n_members=self.config.committee_size, random_state=self.config.seed)
        committee.fit(
            pool.vectors[mask],
            pool.labels[mask],
            len(self.label_set),
            prior_embeddings=pool.label_vectors,
        )
        self._committee, self._scores = committee, None
        return committee

    @property
    def scores(self) -> Scores:
        """Committee probabilities for the whole pool, computed once per fit."""
        if self._scores is None:
            committee, vectors = self.committee, self.pool.vectors
            self._scores = Scores(
                committee.predict_proba(vectors),
                committee.member_proba(vectors),
                zero_shot_proba(vectors, self.pool.label_vectors, committee.temperature),
            )
        return self._scores

    # ---- library API ---------------------------------------------------------------------
    def candidates(self) -> np.ndarray:
        """Positions of items with no label that are not waiting for (or back from) review."""
        pool = self.pool
        return np.flatnonzero(pool.unlabelled_mask & ~pool.queued)

    def query(self, n: int | None = None, strategy: str | None = None) -> list[Item]:
        """The n items most worth a look now (active selection over the candidates)."""
        positions = self.select_positions(n or self.config.batch_size, strategy)
        return [self.pool.items[i] for i in positions]

    def select_positions(self, n: int, strategy: str | None = None) -> np.ndarray:
        pool, cands = self.pool, self.candidates()
        n = min(n, cands.size)
        has_labels = bool(pool.human_mask.any())
        name = strategy or (self.config.strategy if has_labels else "zeroshot")
        # Seeded by the evidence, not the clock or the round count: a restarted job picks the
        # same items again, so their LLM replies come back from the cache.
        rng = np.random.default_rng([self.config.seed, int(pool.human_mask.sum()), n])
        scores = self.scores
        selection = get_strategy(name)(
            scores.probs,
            pool.vectors,
            cands,
            n,
            rng,
            member_probs=scores.members,
            labelled=np.flatnonzero(~pool.unlabelled_mask),
            label_embeddings=pool.label_vectors,
        )
        return np.asarray(selection.indices, dtype=np.int64)

    def submit(
        self,
        answers: Mapping[str, str | None],
        actor: str = "library",
        round_no: int = 0,
    ) -> int:
        """Record human labels given by external id; returns how many were stored."""
        by_id = {item.id: item for item in self.pool.items}
        annotations = []
        for ext_id, label in answers.items():
            if ext_id not in by_id:
                raise InputError(f"unknown item id '{ext_id}'", field="id")
            if label is not None and label not in self.label_set:
                raise InputError(f"label '{label}' is not in the label set", field="label")
            annotations.append(self._human(by_id[ext_id], label, actor, round_no))
        self.store.add_annotations(annotations)
        keys = [by_id[i].key for i in answers]
        for key in keys:
            self.store.complete(key, actor)
        self.reload_labels()
        return len(annotations)

    @staticmethod
    def _human(item: Item, label: str | None, actor: str, round_no: int, **meta: Any) -> Annotation:
        return Annotation(
            item.key,
            label,
            Source.HUMAN,
            Kind.LABEL,
            actor=actor,
            confidence=None,
            round=round_no,
            meta={k: v for k, v in meta.items() if v is not None},
        )

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """Best label index (n,) and its probability (n,): the current label, else the model's."""
        probs = self.scores.probs
        best = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        labelled = self.pool.labels != NO_LABEL
        best[labelled] = self.pool.labels[labelled]
        conf[labelled] = 1.0
        return best, conf

    def best_guess(self) -> np.ndarray:
        """Best label index (n,) for every item: its label, else the pooled LLM + classifier
        view (items the LLM has seen), else the classifier's argmax. Never -1."""
        guess = self.scores.probs.argmax(axis=1)
        votes = self.store.annotations(source="llm", kind="vote")
        latest = {row["item_key"]: row for row in votes}
        seen = [
            (self.pool.position(k), row)
            for k, row in latest.items()
            if row["label"] in self.label_set
        ]
        if seen:
            pos = np.array([p for p, _ in seen], dtype=np.int64)
            llm = np.array([self.label_set.index(r["label"]) for _, r in seen], dtype=np.int64)
            conf = np.array([float(r["confidence"] or 0.0) for _, r in seen])
            pooled, _ = best_label(Votes.from_llm(llm, conf, self.scores.probs[pos]))
            guess[pos] = np.where(pooled >= 0, pooled, guess[pos])
        carried = self.pool.labels != NO_LABEL
        guess[carried] = self.pool.labels[carried]
        return np.asarray(guess)

    # ---- services for the review TUI -----------------------------------------------------
    # ---- helpers for routing and review -------------------------------------------------
    def suggestion(
        self, position: int, llm: dict[str, Any] | None, best: int, p_wrong: float
    ) -> dict[str, Any]:
        """What a reviewer is shown: the LLM's view, the classifier's top 3, the best guess."""
        probs = self.scores.probs[position]
        top = np.argsort(-probs)[:3]
        names = self.label_set.names
        clf_text = f"classifier says {names[top[0]]} ({probs[top[0]]:.2f})"
        if llm is None:
            llm_text = "no LLM"
        elif llm["label"] is None:
            llm_text = "LLM abstained"
        else:
            llm_text = f"LLM says {llm['label']} ({llm['confidence']:.2f})"
        return {
            "first_opinion": "LLM" if self.labeller_mode == "llm" else "zero-shot",
            "llm": llm,
            "classifier": [[names[i], round(float(probs[i]), 4)] for i in top],
            "best": names[best] if best >= 0 else None,
            "p_wrong": round(p_wrong, 4),
            "detail": f"{llm_text}, {clf_text}",
        }

    def few_shot_examples(self, positions: np.ndarray) -> list[list[tuple[str, str]]] | None:
        """For each item, the k nearest human-verified items (label-balanced), or None."""
        k = self.config.llm.few_shot_k
        human = np.flatnonzero(self.pool.human_mask)
        if k == 0 or human.size == 0:
            return None
        pool = self.pool
        index = FewShotIndex(
            pool.vectors[human],
            [self.label_set.names[pool.labels[i]] for i in human],
            [pool.items[i].text for i in human],
        )
        return index.select(pool.vectors[positions], k)

    def similar_unlabelled(self, positions: np.ndarray) -> np.ndarray:
        """How many unlabelled items share each item's k-means cell (n,): what an answer settles."""
        if self._cells is None:
            self._cells = _cells(self.pool.vectors, self.config.seed)
        return unlabelled_in_cell(self._cells, self.pool.unlabelled_mask, positions)

    def refresh(self) -> None:
        """Retrain on the newest human labels and rewrite the pending queue's suggestions."""
        self.reload_labels()
        self.retrain()
        refresh_queue(self)
        store_estimate(self.store, self.config.routing)

    def neighbours(self, item_key: int, k: int = 5) -> list[tuple[str, str, float]]:
        """The k most similar labelled items: (text, label, cosine similarity)."""
        pool = self.pool
        labelled = np.flatnonzero(pool.labels != NO_LABEL)
        if labelled.size == 0:
            return []
        sims = pool.vectors[labelled] @ pool.vectors[pool.position(item_key)]
        order = np.argsort(-sims)[:k]
        return [
            (pool.items[i].text, self.label_set.names[pool.labels[i]], float(sim))
            for i, sim in zip(labelled[order], sims[order])
        ]


def _cells(vectors: np.ndarray, seed: int) -> np.ndarray:
    """K-means cell (n,) of every item: ~sqrt(n) cells, fitted on a sample for speed."""
    from sklearn.cluster import MiniBatchKMeans

    n = vectors.shape[0]
    k = int(min(max(2, np.sqrt(n)), 1000, n))
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(n, size=min(n, 50 * k), replace=False)]
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=4096).fit(sample)
    return np.asarray(km.predict(vectors), dtype=np.int64)
