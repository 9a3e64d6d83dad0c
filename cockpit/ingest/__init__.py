"""Loaders: raw exports from the drop folder -> validated, pseudonymized rows in the
store, refused rows in quarantine with a reason. See docs/EXPORTS.md for the formats.

    summary = load_folder(con, Path("data/raw"), key, progress=print)
    print(summary.text())
"""
from .files import KINDS, discover, kind_of
from .runner import load_folder
from .summary import FileResult, LoadSummary

__all__ = ["KINDS", "FileResult", "LoadSummary", "discover", "kind_of", "load_folder"]
