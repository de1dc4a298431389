"""Claim records as JSON files in a folder, one per input: the inbox's ledger."""

from __future__ import annotations

from pathlib import Path

from highlights.claims import Claim
from highlights.files import write_text_atomic


class FileClaims:
    """Claim records as JSON files in a folder, one per name (the inbox's ledger)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def read(self, name: str) -> Claim | None:
        path = self.path(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return Claim.from_json(text, str(path))

    def write(self, name: str, claim: Claim) -> None:
        write_text_atomic(self.path(name), claim.to_json())

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
