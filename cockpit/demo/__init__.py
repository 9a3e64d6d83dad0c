"""Synthetic demo data: raw exports of every channel and site, as docs/EXPORTS.md
describes them, with planted effects recorded in ground_truth.json."""
from cockpit.demo.generate import generate

__all__ = ["generate"]
