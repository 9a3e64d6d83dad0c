"""Finding raw exports in the drop folder: the kind of each file (by name pattern, see
docs/EXPORTS.md), the order they load in, and their content hash."""
from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# Load order: the setup first (every other kind is validated against its dimensions),
# then facts that need only dimensions, then person-bearing exports in funnel order so
# that links learnt from one kind (visitor -> person) are there for the next.
KINDS: tuple[tuple[str, str], ...] = (
    ("setup", "setup_*.json"),
    ("meta_ads", "meta_ads_*.csv"),
    ("google_ads", "google_ads_*.csv"),
    ("linkedin_ads", "linkedin_ads_*.csv"),
    ("offline_costs", "offline_costs_*.csv"),
    ("web_events", "web_events_*.jsonl"),
    ("qr_scans", "qr_scans_*.csv"),
    ("prescreener", "prescreener_*.csv"),
    ("hcp_referrals", "hcp_referrals_*.csv"),
    ("screening_events", "screening_events_*.csv"),
    ("consent", "consent_*.jsonl"),
    ("site_pipeline", "site_pipeline_*.csv"),
)

_ORDER = {kind: i for i, (kind, _) in enumerate(KINDS)}

# Content hashes of files read by this process, by (path, size, modification time): a
# scheduler scanning the drop folder every minute need not read unchanged files again.
_HASHES: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class FoundFile:
    """A raw export found in the drop folder."""

    path: Path
    rel: str  # path relative to the drop folder, '/'-separated: what the store records
    kind: str


def kind_of(name: str) -> str | None:
    """The kind of export a file name denotes, or None when it is not an export."""
    lower = name.lower()
    for kind, pattern in KINDS:
        if fnmatch.fnmatchcase(lower, pattern):
            return kind
    return None


def discover(source: Path) -> list[FoundFile]:
    """Every export under ``source`` (recursively), in load order: by kind, then by path.
    Hidden files and folders (editor swap files, partial uploads) are ignored."""
    found = []
    for path in source.rglob("*"):
        rel = path.relative_to(source)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        kind = kind_of(path.name)
        if kind is not None:
            found.append(FoundFile(path=path, rel=rel.as_posix(), kind=kind))
    found.sort(key=lambda f: (_ORDER[f.kind], f.rel))
    return found


def sha256_hex(data: bytes) -> str:
    """Content hash that identifies a file in ``source_file``, whatever its name."""
    return hashlib.sha256(data).hexdigest()


def known_sha256(path: Path, stat: os.stat_result) -> str | None:
    """The hash of ``path`` when this process read it before and it has not changed."""
    return _HASHES.get((str(path), stat.st_size, stat.st_mtime_ns))


def remember_sha256(path: Path, stat: os.stat_result, sha: str) -> None:
    """Note the hash of ``path`` as it was at ``stat``."""
    _HASHES[(str(path), stat.st_size, stat.st_mtime_ns)] = sha
