"""What a load run did: per file and in total, with the lines the CLI prints."""
from __future__ import annotations

from dataclasses import dataclass, field

from .context import FileCounts


@dataclass
class FileResult:
    """The fate of one file: ``status`` is loaded, skipped (same bytes loaded before),
    rejected (quarantined as a whole) or deferred (unreadable or changed while loading;
    tried again next run)."""

    path: str
    kind: str
    status: str
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    erased: int = 0
    ignored: int = 0
    message: str | None = None

    @classmethod
    def loaded(cls, path: str, kind: str, counts: FileCounts) -> "FileResult":
        return cls(path, kind, "loaded", counts.read, counts.accepted, counts.quarantined,
                   counts.erased, counts.ignored)

    def line(self) -> str:
        """One short line for progress output."""
        if self.status == "skipped":
            return f"{self.path}: already loaded, skipped"
        if self.status in ("rejected", "deferred"):
            return f"{self.path}: {self.status}: {self.message}"
        extra = "".join(f", {n:,} {label}" for n, label in
                        ((self.erased, "erased persons skipped"), (self.ignored, "not data"))
                        if n)
        return (f"{self.path}: {self.read:,} rows ({self.accepted:,} accepted, "
                f"{self.quarantined:,} quarantined{extra})")


@dataclass
class LoadSummary:
    """Totals of a load run and the result of each file."""

    run_id: int
    files_seen: int = 0
    files_loaded: int = 0
    files_skipped: int = 0
    files_rejected: int = 0
    files_deferred: int = 0
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    rows_erased: int = 0
    rows_ignored: int = 0
    status: str = "running"
    message: str | None = None
    files: list[FileResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings worth keeping with the run
    unit: str = "files"  # what a run of this source reads: files, or batches of SQL rows

    def add(self, result: FileResult) -> None:
        """Count one file's result in."""
        self.files.append(result)
        counter = {"loaded": "files_loaded", "skipped": "files_skipped",
                   "rejected": "files_rejected", "deferred": "files_deferred"}[result.status]
        setattr(self, counter, getattr(self, counter) + 1)
        self.rows_read += result.read
        self.rows_accepted += result.accepted
        self.rows_quarantined += result.quarantined
        self.rows_erased += result.erased
        self.rows_ignored += result.ignored

    def text(self) -> str:
        """Summary lines for the command line."""
        files = (f"Load run {self.run_id} {self.status}: {self.files_seen:,} {self.unit} seen, "
                 f"{self.files_loaded:,} loaded, {self.files_skipped:,} already loaded, "
                 f"{self.files_rejected:,} rejected")
        if self.files_deferred:
            files += f", {self.files_deferred:,} deferred to the next run"
        rows = (f"Rows: {self.rows_read:,} read, {self.rows_accepted:,} accepted, "
                f"{self.rows_quarantined:,} quarantined")
        if self.rows_erased:
            rows += f", {self.rows_erased:,} of erased persons skipped"
        if self.rows_ignored:
            rows += f", {self.rows_ignored:,} not data (summary lines, events without UTM source)"
        lines = [files, rows]
        if self.rows_quarantined or self.files_rejected:
            lines.append(f"See the quarantine table (run_id = {self.run_id}) for the reasons.")
        lines.extend(self.notes)
        if self.message and self.status != "ok":
            lines.append(self.message)
        return "\n".join(lines)
