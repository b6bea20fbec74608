"""Loading the catalog: the packaged default or the file ``GIFTING_CATALOG`` names.

The only I/O of the catalog: read the text, decode it as JSON that refuses
what :mod:`json` would otherwise let through silently (a duplicated key, where
the last one would win; ``NaN`` and ``Infinity``, which are not integers),
then hand the document to :func:`~gifting.core.catalog_check.parse_catalog`.
Every failure is a :class:`~gifting.core.catalog_check.CatalogError` naming
the file.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Final

from gifting.core.catalog_check import CatalogError, parse_catalog
from gifting.core.catalog_model import Catalog

__all__ = ["DEFAULT_CATALOG_SOURCE", "load_catalog"]

#: How errors name the packaged default file.
DEFAULT_CATALOG_SOURCE: Final = "gifting/catalog.json"


def _decode(text: str, source: str) -> object:
    def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for key, value in pairs:
            if key in obj:
                raise CatalogError(f"{source}: duplicate key {key!r} in a JSON object")
            obj[key] = value
        return obj

    def no_constants(name: str) -> object:
        raise CatalogError(f"{source}: {name} is not allowed in a catalog (integers only)")

    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source}: not valid JSON: {exc}") from exc


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalog file; ``None`` loads the packaged default.

    The server passes ``Settings.catalog_path`` (``GIFTING_CATALOG``). Raises
    :class:`CatalogError` if the file cannot be read, is not JSON, or is invalid.
    """
    if path is None:
        source = DEFAULT_CATALOG_SOURCE
        resource = resources.files("gifting").joinpath("catalog.json")
        try:
            text = resource.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{source}: cannot read the packaged catalog: {exc}") from exc
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{source}: cannot read the catalog file: {exc}") from exc
    return parse_catalog(_decode(text, source), source)
