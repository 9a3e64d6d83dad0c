"""Writing the drop folder: file names, headers and formats of docs/EXPORTS.md.

Time series go to one file per kind and month (`meta_ads_2026-03.csv`), appended
study by study, so memory stays bounded at any scale. Folders are numbered in a
valid load order (setup first, then consent, then the facts).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from cockpit.demo.delivery import PaidDelivery
from cockpit.demo.util import iso_day, month_key
from cockpit.demo.world import World

SETUP_FILE = "00_setup/setup_demo.json"
TRUTH_FILE = "ground_truth.json"


@dataclass(frozen=True)
class Kind:
    """Where and how one export kind is written."""

    folder: str
    ext: str
    header: tuple[str, ...] | None    # CSV header; None for JSONL


KINDS: dict[str, Kind] = {
    "consent": Kind("10_consent", "jsonl", None),
    "meta_ads": Kind("20_ads/meta", "csv", ("Day", "Campaign name", "Ad name", "Platform", "Amount spent (EUR)",
                                            "Impressions", "Link clicks")),
    "google_ads": Kind("20_ads/google", "csv", ("Day", "Campaign", "Ad", "Currency code", "Cost", "Impr.",
                                                "Clicks")),
    "linkedin_ads": Kind("20_ads/linkedin", "csv", ("Start Date (in UTC)", "Campaign Name", "Creative Name",
                                                    "Total Spent", "Impressions", "Clicks")),
    "web_events": Kind("30_web", "jsonl", None),
    "qr_scans": Kind("40_qr", "csv", ("scan_id", "scanned_at", "code", "visitor_id")),
    "hcp_referrals": Kind("50_referrals", "csv", ("referral_id", "referred_at", "study_id", "site_id", "hcp_id",
                                                  "patient_email", "patient_phone", "birth_year")),
    "screening_events": Kind("60_events", "csv", ("signup_id", "signed_up_at", "event_name", "study_id", "site_id",
                                                  "email", "phone", "birth_year")),
    "prescreener": Kind("70_prescreener", "csv", (
        "response_id", "started_at", "completed_at", "study_id", "site_id", "email", "phone", "birth_year",
        "eligible", "ineligible_reason", "visitor_id", "utm_source", "utm_campaign", "utm_content", "qr_code",
        "referral_id", "signup_id")),
    "site_pipeline": Kind("80_pipeline", "csv", ("record_id", "study_id", "site_id", "email", "phone", "status",
                                                 "status_at", "reason")),
    "offline_costs": Kind("90_costs", "csv", ("cost_id", "date", "channel", "campaign_id", "study_id", "site_id",
                                              "amount", "currency", "description")),
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _long_date(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def _month_range(month: str, end: date) -> str:
    """'"March 1, 2026 - March 31, 2026"' for a month key, cut at `end`."""
    first = date.fromisoformat(month + "-01")
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    last = min(date.fromordinal(nxt.toordinal() - 1), end)
    return f'"{_long_date(first)} - {_long_date(last)}"'


def thousands(values: np.ndarray, decimals: int) -> list[str]:
    """Numbers with thousands separators, as Google Ads writes them."""
    fmt = f"{{:,.{decimals}f}}"
    return [fmt.format(v) for v in values]


class DropWriter:
    """Appends export rows to monthly files and remembers what it wrote."""

    def __init__(self, out_dir: Path, end: date) -> None:
        self.out = Path(out_dir)
        self.end = end
        self.rows: dict[str, int] = {k: 0 for k in KINDS}
        self.files: dict[str, Path] = {}
        self._google_totals: dict[str, list[int]] = {}

    def clean(self) -> None:
        """Remove exports an earlier run left in this folder's layout (only ours)."""
        for name, kind in KINDS.items():
            folder = self.out / kind.folder
            if folder.is_dir():
                for path in folder.glob(f"{name}_*.{kind.ext}"):
                    path.unlink()
        for name in (SETUP_FILE, TRUTH_FILE):
            (self.out / name).unlink(missing_ok=True)

    def write_json(self, relpath: str, obj: dict) -> Path:
        path = self.out / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        return path

    def append(self, kind: str, df: pd.DataFrame) -> None:
        """Write the rows of `df` (with a `_month` column) to their monthly files."""
        if df.empty:
            return
        spec = KINDS[kind]
        month = df["_month"].to_numpy().astype(str)
        order = np.argsort(month, kind="stable")
        month = month[order]
        data_cols = [c for c in df.columns if not c.startswith("_")] if spec.header else ["_line"]
        columns = [df[c].to_numpy()[order] for c in data_cols]
        bounds = np.flatnonzero(np.r_[True, month[1:] != month[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            path = self.out / spec.folder / f"{kind}_{month[a]}.{spec.ext}"
            with self._open(kind, month[a], path) as fh:
                if spec.header is None:
                    fh.write("\n".join(columns[0][a:b].tolist()) + "\n")
                else:
                    csv.writer(fh, lineterminator="\n").writerows(zip(*(c[a:b].tolist() for c in columns)))
            self.rows[kind] += int(b - a)
            if kind == "google_ads":
                self._add_google_total(month[a], df.iloc[order[a:b]])

    def _open(self, kind: str, month: str, path: Path):
        """Open for appending; a file new in this run gets its title lines and header."""
        key = str(path)
        if key in self.files:
            return path.open("a", encoding="utf-8", newline="")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files[key] = path
        fh = path.open("w", encoding="utf-8", newline="")
        if kind == "google_ads":
            fh.write("Ad performance report\n" + _month_range(month, self.end) + "\n")
        header = KINDS[kind].header
        if header is not None:
            csv.writer(fh, lineterminator="\n").writerow(header)
        return fh

    def _add_google_total(self, month: str, part: pd.DataFrame) -> None:
        tot = self._google_totals.setdefault(month, [0, 0, 0])
        tot[0] += int(part["_cents"].sum())
        tot[1] += int(part["_impr"].sum())
        tot[2] += int(part["_clicks"].sum())

    def finish(self) -> None:
        """Close the Google Ads files with their summary row (not data)."""
        for month, (cents, impr, clicks) in sorted(self._google_totals.items()):
            path = self.out / KINDS["google_ads"].folder / f"google_ads_{month}.csv"
            cost = thousands(np.array([cents / 100.0]), 2)[0]
            with path.open("a", encoding="utf-8", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerow(["Total", "", "", "EUR", cost, f"{impr:,d}", f"{clicks:,d}"])

    def file_list(self) -> list[str]:
        return sorted(str(p.relative_to(self.out)) for p in self.files.values())

    def files_per_kind(self) -> dict[str, int]:
        counts = {k: 0 for k in KINDS}
        for p in self.files.values():
            counts[p.name.rsplit("_", 1)[0]] += 1
        return counts


# ---------------------------------------------------------------- ad platform rows


def ad_exports(world: World, delivery: PaidDelivery) -> dict[str, pd.DataFrame]:
    """The study's delivery as each platform exports it."""
    ads = delivery.ads
    cr = world.creatives
    camps = world.campaigns
    idx = ads.creative_idx.to_numpy()
    channel = cr.channel_id.to_numpy()[idx]
    camp_name = camps.name.to_numpy()[cr.campaign_idx.to_numpy()[idx]]
    ad_name = cr.name.to_numpy()[idx]
    full = pd.DataFrame({"day": ads.day.to_numpy(), "channel": channel, "campaign": camp_name, "ad": ad_name,
                         "cents": ads.spend_cents.to_numpy(), "impr": ads.impressions.to_numpy(),
                         "clicks": ads.clicks.to_numpy()})
    full = full.sort_values(["day", "campaign", "ad"], kind="stable").reset_index(drop=True)
    out = {}
    meta = full[full.channel.isin(["facebook", "instagram"])]
    out["meta_ads"] = pd.DataFrame({
        "Day": iso_day(meta.day.to_numpy()), "Campaign name": meta.campaign.to_numpy(), "Ad name": meta.ad.to_numpy(),
        "Platform": meta.channel.to_numpy(), "Amount spent (EUR)": _money(meta.cents.to_numpy()),
        "Impressions": meta.impr.to_numpy(), "Link clicks": meta.clicks.to_numpy(),
        "_month": month_key(meta.day.to_numpy())})
    yt = full[full.channel == "youtube"]
    out["google_ads"] = pd.DataFrame({
        "Day": iso_day(yt.day.to_numpy()), "Campaign": yt.campaign.to_numpy(), "Ad": yt.ad.to_numpy(),
        "Currency code": "EUR", "Cost": thousands(yt.cents.to_numpy() / 100.0, 2),
        "Impr.": thousands(yt.impr.to_numpy(), 0), "Clicks": thousands(yt.clicks.to_numpy(), 0),
        "_month": month_key(yt.day.to_numpy()), "_cents": yt.cents.to_numpy(), "_impr": yt.impr.to_numpy(),
        "_clicks": yt.clicks.to_numpy()})
    li = full[full.channel == "linkedin"]
    days = li.day.to_numpy().astype("datetime64[D]")
    us_date = [f"{d.month:02d}/{d.day:02d}/{d.year}" for d in days.tolist()]
    out["linkedin_ads"] = pd.DataFrame({
        "Start Date (in UTC)": us_date, "Campaign Name": li.campaign.to_numpy(), "Creative Name": li.ad.to_numpy(),
        "Total Spent": _money(li.cents.to_numpy()), "Impressions": li.impr.to_numpy(), "Clicks": li.clicks.to_numpy(),
        "_month": month_key(li.day.to_numpy())})
    return out


def _money(cents: np.ndarray) -> list[str]:
    return [f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]

