"""The README's library example runs as written (it is the first code a developer copies)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Library use", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README lost its library example"
    scope: dict[str, object] = {}
    exec(compile(code.group(1), str(README), "exec"), scope)  # our own README, run as written
    labels, confidence = scope["labels"], scope["confidence"]
    assert len(labels) == len(confidence) == 3  # type: ignore[arg-type]
