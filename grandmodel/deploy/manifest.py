"""A bundle's integrity: the SHA-256 of every file, kept in ``metadata.json``, checked on load.

``metadata.json`` lists ``files`` (name -> SHA-256) and carries ``metadata_sha256``, the digest of
its own canonical JSON without that key, so an edited contract is refused like an altered graph.
No torch here: the inference path reads bundles with NumPy and ONNX Runtime only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from grandmodel.errors import GrandModelError

METADATA = "metadata.json"
SELF_DIGEST = "metadata_sha256"
FORMAT = "grandmodel-bundle"
FORMAT_VERSION = 1


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def canonical_digest(metadata: dict[str, Any]) -> str:
    """SHA-256 of the metadata's canonical JSON, ``metadata_sha256`` left out."""
    body = {k: v for k, v in metadata.items() if k != SELF_DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(metadata: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``metadata`` with the digests of ``files`` (the names it lists, read from ``folder``) and its
    own digest added."""
    files = {name: file_sha256(folder / name) for name in sorted(metadata["files"])}
    sealed = {**metadata, "files": files}
    sealed[SELF_DIGEST] = canonical_digest(sealed)
    return sealed


def read_verified(folder: Path) -> dict[str, Any]:
    """The bundle's metadata after checking it and every file it lists; one-line errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GrandModelError(
            f"{folder}: no such bundle folder; expected a folder written by export"
        )
    path = folder / METADATA
    if not path.is_file():
        raise GrandModelError(f"{path}: missing; expected the bundle's metadata.json")
    try:
        metadata = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise GrandModelError(
            f"{path}: not valid JSON ({exc}); expected the bundle's metadata"
        ) from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("files"), dict):
        raise GrandModelError(f"{path}: no file list; expected metadata written by export")
    found = (metadata.get("format"), metadata.get("format_version"))
    if found != (FORMAT, FORMAT_VERSION):
        raise GrandModelError(
            f"{path}: bundle format {found[0]} version {found[1]}; expected {FORMAT} version "
            f"{FORMAT_VERSION} (export it again with this version of grandmodel)"
        )
    digest = canonical_digest(metadata)
    if metadata.get(SELF_DIGEST) != digest:
        raise GrandModelError(
            f"{path}: altered (its SHA-256 is {digest}); expected {metadata.get(SELF_DIGEST)}"
        )
    for name, expected in sorted(metadata["files"].items()):
        target = folder / name
        if not target.is_file():
            raise GrandModelError(f"{target}: missing; expected a file with SHA-256 {expected}")
        actual = file_sha256(target)
        if actual != expected:
            raise GrandModelError(f"{target}: altered (SHA-256 {actual}); expected {expected}")
    return metadata
