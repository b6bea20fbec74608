"""The benchmark (DESIGN.md 6): written by the lead; a stub until then."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Not written yet."""
    raise SystemExit("not yet")
