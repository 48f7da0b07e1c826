"""The unit every pipeline step consumes and yields."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = field(default=None, repr=False)  # undecoded payload until extraction; never serialised

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "text": self.text, "metadata": self.metadata}, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Document:
        record = json.loads(line)
        return cls(record["id"], record["text"], record.get("metadata", {}))
