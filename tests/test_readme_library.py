"""Every ```python block of the README's "Library use" section runs as written, in order, in
one namespace (a developer pastes them one after the other). The LLM snippet's
`openai/gpt-4o-mini` is answered by the local test server over real HTTP: the openai SDK
reads OPENAI_BASE_URL, so the README needs no test-only line."""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import pytest

import agent
from agent.llm.test_server import LLMTestServer

README = Path(__file__).resolve().parents[1] / "README.md"


def library_blocks() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Library use", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_library_names_are_public() -> None:
    used = set()
    for block in library_blocks():
        for names in re.findall(r"^from agent import (.+)$", block, re.M):
            used |= {name.strip() for name in names.split(",")}
    assert {"LabelingSession", "run_job", "arun_job", "export", "LLMConfig"} <= used
    assert used <= set(agent.__all__), used - set(agent.__all__)


def test_readme_library_snippets_run(
    llm_server: LLMTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.chdir(tmp_path)  # the export snippet writes labels.csv here
    blocks = library_blocks()
    assert len(blocks) >= 4, "README lost a library snippet"
    assert any("asyncio.run(" in b and "await arun_job(" in b for b in blocks)
    scope: dict[str, object] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for block in blocks:
            exec(compile(block, str(README), "exec"), scope)  # our own README, as written
    ours = [str(w.message) for w in caught if w.filename == str(README)]
    assert not ours, ours  # the README's way of using the library draws no warning
    labels, confidence = scope["labels"], scope["confidence"]
    assert list(labels[:2]) == ["card_arrival", "pin"]  # type: ignore[index]
    assert labels[2] in ("card_arrival", "pin", "refund") and 0 < confidence[2] < 1  # type: ignore[index,operator]
    assert llm_server.stats.requests > 0, "the LLM configured in the README was never asked"
    with open("labels.csv", encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))
    session = scope["session"]
    assert [r["final_label"] for r in exported] == [
        r["final_label"] for r in session.results()  # type: ignore[attr-defined]
    ]
