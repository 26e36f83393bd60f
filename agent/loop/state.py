"""The loop's state over one store: the pool, the committee, its scores, and what they imply.

Rounds, the final pass and the batch job work on a `LoopState`; `LabelingSession` adds the
library's verbs on top. Everything here is derived from the store and rebuilt on demand, so a
restarted process picks up where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from agent.batch import Engine, make_engine
from agent.config import ProjectConfig
from agent.embed import Embedder, make_embedder
from agent.learn.cells import kmeans_cells
from agent.learn.committee import Committee
from agent.learn.crossfit import heldout_probs, log_loss, out_of_fold
from agent.learn.fewshot import FewShotIndex
from agent.learn.strategies import get_strategy
from agent.llm.protocol import ChatBackend
from agent.loop.pool import Pool, build_pool
from agent.routing.calibration import IDENTITY, MIN_VERDICTS, Calibration, fit_calibration
from agent.routing.evidence import Verdicts, collect_verdicts
from agent.routing.priority import unlabelled_in_cell
from agent.routing.trust import LLM_AUDIT, LLMTrust, llm_posterior, llm_trust, posterior_probs
from agent.routing.votes import Votes, best_label
from agent.store.protocol import ProjectStore
from agent.types import NO_LABEL, Item, LabelSet, Source


@dataclass(frozen=True)
class Scores:
    """The committee's view of the whole pool: probs (n, C), members (K, n, C), zero-shot (n, C)."""

    probs: np.ndarray
    members: np.ndarray
    zeroshot: np.ndarray


MIN_LABELS_TO_COMPARE = 20  # people's labels before the LLM's rows must prove they help
MAX_LLM_ROWS_TO_COMPARE = 20_000  # keeps the check's cost flat on large pools
MAX_CALIBRATION_LABELS = 5_000  # people's labels the P(right) map is fitted on, at most


def _llm_dominates(weight: np.ndarray, human_weight: float) -> bool:
    """Whether the LLM's labels (weights below a person's) are most of the training rows.
    Rows, not weight: the smoothing is for a noisy bulk, however much each row counts."""
    from_llm = weight < human_weight
    return int(from_llm.sum()) > int((~from_llm).sum())


class LoopState:
    """Pool, committee and scores of one project, built lazily from its store."""

    def __init__(
        self,
        store: ProjectStore,
        config: ProjectConfig | None = None,
        embedder: Embedder | None = None,
        backend: ChatBackend | None = None,
        progress: bool = False,
        *,
        engine: Engine | None = None,
    ) -> None:
        """`engine` runs the pool-wide work (default: the config's engine and ray_address)."""
        self.store = store
        self.config = config or ProjectConfig()
        self.label_set: LabelSet = store.label_set
        self.embedder = embedder or make_embedder(self.config.embedding_model)
        self.engine = engine or make_engine(self.config.engine, self.config.ray_address)
        self.backend = backend
        self.progress = progress
        # Who claims items for the LLM (with this process's pid and host): one name per worker.
        self.holder = "labelagent"
        self._pool: Pool | None = None
        self._committee: Committee | None = None
        self._scores: Scores | None = None
        self._cells: np.ndarray | None = None
        self._verdicts: tuple[int, Verdicts] | None = None
        self._crossfit: tuple[np.ndarray, np.ndarray] | None = None
        # People's labels (positions) scored by models that never saw them, as the last
        # retrain's check left them (None: no check), and the P(right) map fitted on them.
        self._people_heldout: tuple[np.ndarray, np.ndarray] | None = None
        self._calibration: Calibration | None = None
        # What the last retrain's cross-fitted check on people's labels found (None: no
        # check): whether the LLM's rows teach the classifier, whether its votes help guess.
        self.llm_teaches: bool | None = None
        self.llm_decides: bool | None = None
        # The same check's classifier on the LLM audits, out of fold (None: none): its
        # (right, of), and (audits only the LLM got right, only the classifier got right).
        self.audit_record: tuple[tuple[int, int], tuple[int, int]] | None = None

    @property
    def labeller_mode(self) -> str:
        """'llm' when an LLM pre-labels, 'none' when the zero-shot member stands in for it."""
        return "none" if self.backend is None else "llm"

    # ---- pool and committee --------------------------------------------------------------
    @property
    def pool(self) -> Pool:
        """Every item with its vector; built (and embedded, cached) on first use."""
        if self._pool is None or self._pool.last_key != self.store.last_item_key():
            self._pool = build_pool(
                self.store,
                self.embedder,
                self.config.embedding_batch_size,
                self.progress,
                self.engine,
            )
            self._committee = self._scores = self._calibration = None
        return self._pool

    def items_at(self, positions: np.ndarray | Sequence[int]) -> list[Item]:
        """The items at pool positions, in that order, read from the store (the pool holds
        no texts)."""
        return self.store.items(self.pool.keys[np.asarray(positions, dtype=np.int64)].tolist())

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
        """Fit the committee on human-verified labels (reviews, imported gold), unless
        configured off on auto-accepted LLM labels (their precision is audited), and, once
        audits have measured the LLM, on its votes over the pool, weighted by what they are
        worth (`LLMTrust.weight`); people's labels then weigh `human_weight` each."""
        rows, labels, weight = self._training_set()
        committee = self._committee_on(rows, labels, weight, self.config.committee_size)
        self._committee, self._scores, self._crossfit = committee, None, None
        self._calibration = None
        if weight is not None:  # the LLM's votes are in: score them out of fold
            voted = rows[weight < self.config.routing.human_weight]
            self._crossfit = (voted, self._out_of_fold(rows, labels, weight, voted))
        return committee

    def _training_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Positions (t,), labels (t,) and weights (t,) (None: all equal) to fit on."""
        pool = self.pool
        self.llm_teaches = self.llm_decides = self.audit_record = None
        self._people_heldout = None
        mask = pool.human_mask
        if self.config.train_on_auto:  # audited auto-accepts: more labels, precision measured
            mask = mask | ((pool.sources == Source.LLM.value) & (pool.labels != NO_LABEL))
        rows = np.flatnonzero(mask)
        trust = self.trust()
        if self.backend is None or not trust.established(self.config.routing.trust_audits):
            return rows, pool.labels[rows], None
        pos, llm, _ = self.llm_votes()
        extra = ~mask[pos]
        llm_weight = trust.label_weights()[llm]  # what each vote's label is worth
        extra &= llm_weight > 0
        if not extra.any():
            return rows, pool.labels[rows], None
        weight = np.where(pool.human_mask[rows], self.config.routing.human_weight, 1.0)
        mixed = (
            np.concatenate([rows, pos[extra]]),
            np.concatenate([pool.labels[rows], llm[extra]]),
            np.concatenate([weight, llm_weight[extra]]),
        )
        self.llm_teaches = self._llm_rows_help(*mixed)
        return mixed if self.llm_teaches else (rows, pool.labels[rows], None)

    def _llm_rows_help(self, rows: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> bool:
        """Whether the LLM's rows make the classifier better at people's labels: cross-fitted
        over people's labels, a model fitted on them alone against one fitted on them plus the
        LLM's rows, by held-out log loss. A weak LLM's labels teach the classifier its errors;
        then people's labels alone do better, and the LLM's get no weight."""
        people = np.flatnonzero(weight >= self.config.routing.human_weight)
        if people.size < MIN_LABELS_TO_COMPARE:
            return True  # too few to tell: the audited per-label weights decide alone
        from_llm = np.flatnonzero(weight < self.config.routing.human_weight)
        rng = np.random.default_rng([self.config.seed, 29])
        if from_llm.size > MAX_LLM_ROWS_TO_COMPARE:  # the comparison, not the model, is sampled
            from_llm = rng.choice(from_llm, MAX_LLM_ROWS_TO_COMPARE, replace=False)
        truth = labels[people]
        alone = self._held_out(rows, labels, weight, people, from_llm[:0])
        taught = self._held_out(rows, labels, weight, people, from_llm)
        helps = log_loss(taught, truth) < log_loss(alone, truth)
        self._people_heldout = (rows[people], taught if helps else alone)
        self.llm_decides = self._votes_help(rows[people], truth, taught if helps else alone)
        return helps

    def _held_out(
        self, rows: np.ndarray, labels: np.ndarray, weight: np.ndarray | None,
        people: np.ndarray, extra: np.ndarray,
    ) -> np.ndarray:
        """Probabilities (m, C) for the rows at `people` (m indices into `rows`), each from a
        committee fitted on the other folds of them plus the rows at `extra` (weighted by
        `weight` when there are any): what a model that never saw the label says."""
        vectors = self.pool.vectors

        def fit_without(held: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            train = np.concatenate([np.setdiff1d(people, held), extra])
            sample_weight = weight[train] if extra.size and weight is not None else None
            model = self._committee_on(rows[train], labels[train], sample_weight, 0)
            return lambda at: model.predict_proba(vectors[rows[at]])

        return heldout_probs(people, fit_without, self.config.routing.crossfit_folds,
                             self.config.seed)  # fmt: skip

    def llm_adds_nothing(self) -> bool:
        """People's labels show the LLM's labels neither teach the classifier nor improve
        its guesses (the last retrain's cross-fitted check): asking it is money for nothing."""
        return self.llm_teaches is False and self.llm_decides is False

    def _votes_help(self, positions: np.ndarray, truth: np.ndarray, probs: np.ndarray) -> bool:
        """Whether the LLM's votes, trusted as audited, predict people's labels (at
        `positions`) better than the classifier's cross-fitted probabilities (m, C) alone:
        else they get no say in any item's best guess. Judged on the LLM audits only, a
        uniform draw of what the LLM labelled: the other reviews are where the two disagreed,
        where the LLM looks worse than it is on the items its votes decide."""
        verdicts = self.verdicts()
        audited = verdicts.where((verdicts.reason == LLM_AUDIT) & (verdicts.llm != NO_LABEL))
        said_at = dict(zip(audited.item_keys.tolist(), audited.llm.tolist()))
        keys = self.pool.keys[positions]
        said = np.array([said_at.get(int(k), NO_LABEL) for k in keys], dtype=np.int64)
        voted = said != NO_LABEL
        if int(voted.sum()) < MIN_LABELS_TO_COMPARE:
            return True  # too few to tell: the audited trust decides alone
        right = probs[voted].argmax(axis=1) == truth[voted]
        llm_right = said[voted] == truth[voted]
        self.audit_record = (
            (int(right.sum()), int(voted.sum())),
            (int((llm_right & ~right).sum()), int((right & ~llm_right).sum())),
        )
        likelihood = self.trust().likelihood()
        combined = posterior_probs(probs[voted], said[voted], likelihood)
        return log_loss(combined, truth[voted]) < log_loss(probs[voted], truth[voted])

    def _committee_on(
        self, rows: np.ndarray, labels: np.ndarray, weight: np.ndarray | None, members: int
    ) -> Committee:
        pool = self.pool
        committee = Committee(n_members=members, random_state=self.config.seed)
        if weight is not None and _llm_dominates(weight, self.config.routing.human_weight):
            # taught mostly by the LLM's noisy labels over the pool: smoother
            committee.set_params(C=self.config.llm_taught_c, class_weight=None)
        return committee.fit(
            pool.vectors[rows],
            labels,
            len(self.label_set),
            prior_embeddings=pool.label_vectors,
            sample_weight=weight,
        )

    def _out_of_fold(
        self, rows: np.ndarray, labels: np.ndarray, weight: np.ndarray, voted: np.ndarray
    ) -> np.ndarray:
        """Probabilities (m, C) for the LLM-labelled positions `voted` from models that never
        saw their labels (cross-fitting), so disagreement with the LLM means something."""
        index = {int(r): i for i, r in enumerate(rows)}

        def fit(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
            at = np.array([index[int(r)] for r in train], dtype=np.int64)
            model = self._committee_on(train, labels[at], weight[at], members=0)
            return lambda held: model.predict_proba(self.pool.vectors[held])

        folds, seed = self.config.routing.crossfit_folds, self.config.seed
        return out_of_fold(rows, voted, fit, folds, seed)

    def trust(self) -> LLMTrust:
        """The LLM's record on random audits so far, beside the classifier's as it stands now
        where the last retrain measured it (see `agent.routing.trust`)."""
        level = self.config.routing.confidence_level
        trust = llm_trust(self.verdicts(), len(self.label_set), level)
        clf_now, split = self.audit_record or (None, None)
        return replace(trust, clf_now=clf_now, split=split)

    @property
    def scores(self) -> Scores:
        """Committee probabilities for the whole pool, computed once per fit (on the engine)."""
        if self._scores is None:
            committee, pool = self.committee, self.pool
            probs, members, zeroshot = self.engine.score(
                committee, pool.vectors, pool.label_vectors
            )
            if self._crossfit is not None:  # LLM-taught rows: what a model without them says
                voted, oof = self._crossfit
                probs[voted] = oof
            self._scores = Scores(probs, members, zeroshot)
        return self._scores

    # ---- selection -----------------------------------------------------------------------
    def candidates(self) -> np.ndarray:
        """Positions of items with no label that are not waiting for (or back from) review."""
        pool = self.pool
        return np.flatnonzero(pool.unlabelled_mask & ~pool.queued)

    def select_positions(self, n: int, strategy: str | None = None) -> np.ndarray:
        """Up to n candidate positions, most worth a look first (the configured strategy)."""
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

    # ---- votes and best guesses ----------------------------------------------------------
    def votes(
        self,
        positions: np.ndarray,
        llm_label: np.ndarray,
        llm_conf: np.ndarray,
        *,
        members: bool = False,
        zeroshot: bool = True,
    ) -> Votes:
        """Every opinion on the items at `positions`: the LLM's (or, without an LLM, the
        zero-shot member's), the classifier's, and optionally its members' (for routing)."""
        scores = self.scores
        member_probs = scores.members[:, positions] if members else None
        if self.labeller_mode == "none":
            zs, probs = scores.zeroshot[positions], scores.probs[positions]
            return Votes.from_zeroshot(zs, probs, member_probs)
        extra = scores.zeroshot[positions] if zeroshot else None
        return Votes.from_llm(llm_label, llm_conf, scores.probs[positions], member_probs, extra)

    def llm_votes(self, keys: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The newest stored LLM vote per item (of `keys`, else all): positions (m,), label
        index (m,) and confidence (m,); abstains and labels outside the set are left out."""
        latest = self.store.latest_votes(Source.LLM.value, keys)
        rows = [row for row in latest.values() if row["label"] in self.label_set]
        pos = self.pool.positions([row["item_key"] for row in rows])
        labels = np.array([self.label_set.index(r["label"]) for r in rows], dtype=np.int64)
        conf = np.array([float(r["confidence"] or 0.0) for r in rows])
        return pos, labels, conf

    def best_guess(self) -> np.ndarray:
        """Best label index (n,) for every item: its label, else the LLM and the classifier
        combined (items the LLM has seen), else the classifier's argmax. Never NO_LABEL."""
        guess = self.scores.probs.argmax(axis=1)
        pos, llm, conf = self.llm_votes()
        if pos.size:
            combined = self.posterior(pos, llm)
            if combined is None:  # the LLM is not measured yet: pool the opinions
                combined = best_label(Votes.from_llm(llm, conf, self.scores.probs[pos]))
            guess[pos] = np.where(combined[0] != NO_LABEL, combined[0], guess[pos])
        carried = self.pool.labels != NO_LABEL
        guess[carried] = self.pool.labels[carried]
        return np.asarray(guess)

    def p_right(self) -> np.ndarray:
        """P(the label handed over is right) per item (n,): people's labels count as right,
        every other item as likely as its label or best guess: the posterior where the LLM
        voted (its trust is measured on audits), else the classifier's probability mapped
        onto what people's labels measure (`calibration`)."""
        probs, pool = self.scores.probs, self.pool
        guess = self.best_guess()
        p_right = self.calibration().apply(probs[np.arange(len(pool)), guess])
        pos, llm, _ = self.llm_votes()
        combined = self.posterior(pos, llm) if pos.size else None
        if combined is not None:
            free = pool.labels[pos] == NO_LABEL  # carried labels keep the classifier's view
            p_right[pos[free]] = 1.0 - combined[1][free]
        p_right[pool.human_mask] = 1.0
        return p_right

    def calibration(self) -> Calibration:
        """The map from the classifier's probability of its label to the share right, fitted
        once per retrain on people's labels as models that never saw them score them
        (`agent.routing.calibration`)."""
        if self._calibration is None:
            held = self._people_out_of_fold()
            if held is None:
                self._calibration = IDENTITY
            else:
                positions, probs = held
                right = probs.argmax(axis=1) == self.pool.labels[positions]
                self._calibration = fit_calibration(probs.max(axis=1), right)
        return self._calibration

    def _people_out_of_fold(self) -> tuple[np.ndarray, np.ndarray] | None:
        """People's labels (positions) and their out-of-fold probabilities: the last
        retrain's check where it ran, else models fitted on people's other labels."""
        if self._people_heldout is not None:
            return self._people_heldout
        pool = self.pool
        people = np.flatnonzero(pool.human_mask & (pool.labels != NO_LABEL))
        if people.size < MIN_VERDICTS:
            return None
        if people.size > MAX_CALIBRATION_LABELS:  # the map needs a sample, not every label
            rng = np.random.default_rng([self.config.seed, 31])
            people = np.sort(rng.choice(people, MAX_CALIBRATION_LABELS, replace=False))
        everyone = np.arange(people.size)
        return people, self._held_out(people, pool.labels[people], None, everyone, everyone[:0])

    def posterior(
        self, positions: np.ndarray, llm_label: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Best label (n,) and P(wrong) (n,) from the classifier and the LLM trusted at its
        audited accuracy; None until audits have measured the LLM."""
        trust = self.trust()
        if self.backend is None or not trust.established(self.config.routing.trust_audits):
            return None
        probs = self.scores.probs[positions]
        if self.llm_decides is False:  # measured: the votes make people's labels less likely
            return probs.argmax(axis=1), 1.0 - probs.max(axis=1)
        return llm_posterior(probs, llm_label, trust.likelihood())

    def verdicts(self) -> Verdicts:
        """Human verdicts on machine votes, re-read only when the annotation log has grown."""
        mark = self.store.annotation_watermark()
        if self._verdicts is None or self._verdicts[0] != mark:
            self._verdicts = (mark, collect_verdicts(self.store, self.label_set))
        return self._verdicts[1]

    # ---- helpers for prompts and review order --------------------------------------------
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
            [item.text for item in self.items_at(human)],
        )
        return index.select(pool.vectors[positions], k)

    def similar_unlabelled(self, positions: np.ndarray) -> np.ndarray:
        """How many unlabelled items share each item's k-means cell (n,): what an answer settles."""
        if self._cells is None:
            self._cells = kmeans_cells(self.pool.vectors, self.config.seed)
        return unlabelled_in_cell(self._cells, self.pool.unlabelled_mask, positions)
