"""The bundled support corpus under examples/support: files parse and agree with each other.

`make demo` imports these files, so a broken row here breaks the first thing a new user runs.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from agent.types import LabelSet, text_hash

SUPPORT = Path(__file__).resolve().parent.parent / "examples" / "support"
ID_PATTERN = re.compile(r"msg-\d{4}")
DELIBERATE_DUPLICATES = 5


def _read_csv(name: str, header: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV file under examples/support, after checking its exact header."""
    with (SUPPORT / name).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == header, f"{name}: header {reader.fieldnames}"
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        assert None not in row and all(v is not None for v in row.values()), f"{name}:{number}"
    return rows


@pytest.fixture(scope="module")
def labels() -> LabelSet:
    """The label set, parsed the same way `labelagent init --labels` reads JSON."""
    data = json.loads((SUPPORT / "labels.json").read_text(encoding="utf-8"))
    assert isinstance(data, list)
    assert all(set(entry) == {"name", "description"} for entry in data)
    return LabelSet.from_json(data)


@pytest.fixture(scope="module")
def messages() -> list[dict[str, str]]:
    return _read_csv("messages.csv", ["id", "text"])


@pytest.fixture(scope="module")
def gold() -> list[dict[str, str]]:
    return _read_csv("gold.csv", ["id", "label"])


def test_label_set_has_described_labels(labels: LabelSet) -> None:
    assert len(labels) >= 6
    for name, description in zip(labels.names, labels.descriptions):
        assert re.fullmatch(r"[a-z_]+", name), name
        assert description.strip(), f"label {name} has no description"
        assert "\n" not in description and len(description) <= 120, name


def test_messages_are_single_line_nonempty_and_unique_by_id(
    messages: list[dict[str, str]],
) -> None:
    assert len(messages) >= 300
    ids = [row["id"] for row in messages]
    assert len(set(ids)) == len(ids)
    assert all(ID_PATTERN.fullmatch(i) for i in ids)
    for row in messages:
        text = row["text"]
        assert text.strip() == text and text, row["id"]
        assert "\n" not in text and "\r" not in text, row["id"]


def test_only_the_deliberate_duplicates_repeat(messages: list[dict[str, str]]) -> None:
    hashes = Counter(text_hash(row["text"]) for row in messages)
    repeats = {h: n for h, n in hashes.items() if n > 1}
    assert len(repeats) == DELIBERATE_DUPLICATES
    assert set(repeats.values()) == {2}


def test_every_message_has_exactly_one_gold_label_in_the_set(
    messages: list[dict[str, str]], gold: list[dict[str, str]], labels: LabelSet
) -> None:
    gold_ids = Counter(row["id"] for row in gold)
    assert all(n == 1 for n in gold_ids.values()), "an id has more than one gold row"
    assert [row["id"] for row in gold] == [row["id"] for row in messages]
    unknown = {row["label"] for row in gold} - set(labels.names)
    assert not unknown, f"gold labels outside the label set: {unknown}"


def test_duplicates_share_their_gold_label(
    messages: list[dict[str, str]], gold: list[dict[str, str]]
) -> None:
    label_of: dict[str, set[str]] = {}
    for message, answer in zip(messages, gold):
        label_of.setdefault(message["text"], set()).add(answer["label"])
    assert all(len(found) == 1 for found in label_of.values())


def test_classes_are_all_used_and_moderately_balanced(
    gold: list[dict[str, str]], labels: LabelSet
) -> None:
    counts = Counter(row["label"] for row in gold)
    assert set(counts) == set(labels.names), "every label needs examples"
    assert max(counts.values()) <= 3 * min(counts.values())


def test_readme_counts_match_gold(gold: list[dict[str, str]]) -> None:
    readme = (SUPPORT / "README.md").read_text(encoding="utf-8")
    counts = Counter(row["label"] for row in gold)
    for label, count in counts.items():
        assert f"| `{label}` | {count} |" in readme, f"README count for {label}"
    assert f"| **total** | **{len(gold)}** |" in readme


def test_readme_ambiguous_rows_agree_with_gold(gold: list[dict[str, str]]) -> None:
    """Each `| msg-NNNN | text | gold | other |` row in the README names the gold label."""
    readme = (SUPPORT / "README.md").read_text(encoding="utf-8")
    gold_of = {row["id"]: row["label"] for row in gold}
    rows = re.findall(r"^\| (msg-\d{4}) \| .+ \| `(\w+)` \| `(\w+)` \|$", readme, re.M)
    assert len(rows) >= 20
    for message_id, best, other in rows:
        assert gold_of[message_id] == best, message_id
        assert other != best and other in set(gold_of.values()), message_id
