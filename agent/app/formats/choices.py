"""What a tool file's label slot holds: one label name, or a set of names in a multi-label
project (Label Studio `choice="multiple"`, an Argilla `multi_label_selection` question,
Prodigy options with several accepted).

Inside labelagent a set is one mark whose label is the set's canonical text, as the store
keeps it (`agent.types.encode_label_set`), so collecting, de-duplicating and writing marks is
the same for both tasks; only the JSON of each format differs. A set read from a file is
checked where it is read, so its error names the record and the field that hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.app.formats.jsonfile import Where
from agent.app.labelcells import DEFAULT_SEP, encoded_set
from agent.types import LabelSet, decode_label_set


@dataclass(frozen=True)
class Choices:
    """The project's labels, and whether a mark carries a set of them (`multiple`)."""

    label_set: LabelSet
    multiple: bool = False

    def names(self, label: str | None) -> list[str]:
        """The names a mark's label goes out as: the set's names, or the one label (none for
        a person's "no label fits")."""
        if label is None:
            return []
        return list(decode_label_set(label) or ()) if self.multiple else [label]

    def read_set(self, where: Where, value: Any, field: str, required: bool) -> str | None:
        """The canonical text of the set a file gives (a list of names; one name counts as a
        set of one). An empty or missing set is None, unless `required` (a person's answer):
        then it is refused, as are unknown and repeated names."""
        if isinstance(value, str):
            value = [value]
        if value is None or value == []:
            if not required:
                return None
            value = []
        value = where.need(value, list, field)
        try:  # the same check and encoder as every other set input (labelcells)
            return encoded_set(value, self.label_set, DEFAULT_SEP, required=True)
        except ValueError as exc:
            raise where.fail(str(exc), field) from None
