"""The LLM member of a project, built one way for every front door (CLI `run`, the library).

`build_backend` turns the config's `llm.model` into a ChatBackend (simulated annotators also
get gold by text and the label vectors); `ensure_backend` gives a state without one its
configured LLM; `build_labeller` wraps a state's backend in the Labeller the batch job asks.
The CLI (`agent.app.commands`) and the library (`run_job` on a `LabelingSession`) call these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from agent.config import ProjectConfig
from agent.llm.protocol import ChatBackend
from agent.loop.state import LoopState

if TYPE_CHECKING:
    from agent.labeller.labeller import Labeller

NO_LLM = "none"  # as a model name: switch the LLM off (the CLI's `--llm none`)


def with_model(config: ProjectConfig, model: str | None) -> ProjectConfig:
    """`config` with `llm.model` set to `model` ('none' or None: no LLM)."""
    if model is not None and model.strip().lower() == NO_LLM:
        model = None
    return config.model_copy(update={"llm": config.llm.model_copy(update={"model": model})})


def build_backend(
    state: LoopState, gold_by_id: Mapping[str, str] | None = None
) -> ChatBackend | None:
    """The configured LLM, or None without a model; simulated annotators also get gold (ids
    mapped to texts) and the label vectors (for errors that go to confusable labels), a
    replay file keyed by id the project's texts."""
    config = state.config
    if config.llm.model is None:
        return None
    from agent.llm.factory import ANNOTATOR_PREFIXES, make_backend  # SDKs load only if needed

    if not config.llm.model.startswith(ANNOTATOR_PREFIXES):  # a real LLM: no texts needed
        return make_backend(config.llm)
    texts_by_id = {it.id: it.text for batch in state.store.iter_items() for it in batch}
    gold = None
    if gold_by_id is not None:
        gold = {text: gold_by_id[i] for i, text in texts_by_id.items() if i in gold_by_id}
    return make_backend(
        config.llm,
        label_set=state.label_set,
        gold=gold,
        label_embeddings=state.pool.label_vectors,
        texts_by_id=texts_by_id,
    )


def ensure_backend(state: LoopState) -> ChatBackend | None:
    """The state's backend, built from its config first where a model is configured but no
    backend was given (a library session: the LLM client is made only when a job needs it,
    so reading results or reviewing needs no key)."""
    if state.backend is None and state.config.llm.model is not None:
        state.backend = build_backend(state)
    return state.backend


def build_labeller(state: LoopState) -> Labeller | None:
    """The Labeller over the state's backend (its cache and budget in the store), or None."""
    backend = state.backend
    if backend is None:
        return None
    from agent.labeller.labeller import Labeller

    return Labeller(backend, state.label_set, state.config.llm, state.store)
