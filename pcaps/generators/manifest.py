"""Keep ``pcaps/MANIFEST`` in step with the captures a generator writes.

MANIFEST is tab separated: sha256, path relative to ``pcaps/``, generator, content.
Each generator calls :func:`update` with the captures it made; lines of other
generators are kept.  The file is locked while it is rewritten so generators can
run side by side.  This module must not write anything but MANIFEST.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

PCAPS = Path(__file__).resolve().parent.parent
MANIFEST = PCAPS / "MANIFEST"
HEADER = "# sha256\tpath\tgenerator\tcontent"


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def update(generator: str, entries: dict[str, str]) -> None:
    """Replace the MANIFEST lines of ``entries`` (path under pcaps/ -> content text).

    ``generator`` is the generator's path relative to ``pcaps/``.
    """
    MANIFEST.touch(exist_ok=True)
    with MANIFEST.open("r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        rows: dict[str, str] = {}
        for line in handle.read().splitlines():
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            rows[fields[1]] = line
        for rel_path, content in entries.items():
            digest = sha256_of(PCAPS / rel_path)
            rows[rel_path] = "\t".join((digest, rel_path, generator, " ".join(content.split())))
        handle.seek(0)
        handle.truncate()
        handle.write(HEADER + "\n")
        for rel_path in sorted(rows):
            handle.write(rows[rel_path] + "\n")
