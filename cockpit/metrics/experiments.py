"""Numbers of the Experiments page: creative A/B tests declared in the trial setup.

An experiment is a set of creatives sharing an ``experiment_id`` (``creative`` table);
the creative marked ``is_control`` is the control, ``planned_share`` the planned split
of traffic. Each creative is one arm. Counts per arm come from two places:

* impressions and clicks: the ad platforms' daily delivery (``ad_daily``) in the period;
* leads, eligible, consented, randomized: ``journey`` rows whose attributed last touch
  is the creative, for leads created in the period (cohort based: of those leads, how
  many ever reached the stage by the latest data).

Metrics and their units (users -> conversions):

=================  ===========  ==========  ==========================================
metric             users        conversion  meaning
=================  ===========  ==========  ==========================================
CTR                impressions  clicks      clicks / impressions
lead rate          clicks       leads       leads / clicks
eligible rate      leads        eligible    eligible / leads
consent rate       leads        consented   consented / leads
randomized rate    leads        randomized  randomized / leads
=================  ===========  ==========  ==========================================

The statistics are those of ``cockpit.analytics.abtest.analyze`` (Wilson, Newcombe,
z-test, Fisher, Holm, Beta(1,1) chance to beat control, mSPRT always-valid p,
sample-ratio-mismatch check); this module only counts and hands the counts over.

Filters: study, phase and channel select the experiments (through their campaigns);
the date range applies to delivery days and lead days. Site and segment exist only
for persons, so they narrow leads and later stages but not impressions or clicks
(``filter_note`` says so).
"""
from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Mapping

import duckdb
import numpy as np
import pandas as pd

from cockpit.analytics import abtest
from cockpit.filters import Filters


@dataclass(frozen=True)
class Metric:
    """A conversion rate compared between arms: ``conversions / users``."""

    key: str
    label: str
    users: str        # arm_counts column counted as the exposed units
    conversions: str  # arm_counts column counted as the converted units
    meaning: str

    @property
    def person_based(self) -> bool:
        """True when the numerator comes from journey rows (site/segment filters apply)."""
        return self.conversions != "clicks"


METRICS: dict[str, Metric] = {
    "ctr": Metric("ctr", "CTR", "impressions", "clicks",
                  "clicks per impression (ad platform delivery)"),
    "lead_rate": Metric("lead_rate", "Lead rate", "clicks", "leads",
                        "leads attributed to the creative per click on it"),
    "eligible_rate": Metric("eligible_rate", "Eligible rate", "leads", "eligible",
                            "share of the creative's leads found eligible in the pre-screener"),
    "consent_rate": Metric("consent_rate", "Consent rate", "leads", "consented",
                           "share of the creative's leads who signed the (e)Consent"),
    "randomized_rate": Metric("randomized_rate", "Randomized rate", "leads", "randomized",
                              "share of the creative's leads who were randomized"),
}
DEFAULT_METRIC = "ctr"
COUNT_COLUMNS = ["impressions", "clicks", "leads", "eligible", "consented", "randomized"]
# An experiment whose creatives delivered nothing for this many days before the latest
# data is over, even without a planned end date.
STALE_DAYS = 7

# Dimensions that select experiments through their campaign (phase goes through study).
_CAMPAIGN_COLUMNS = {"study": "c.study_id", "channel": "c.channel_id"}
# Dimensions that only persons carry.
_PERSON_COLUMNS = {"site": "j.site_id", "segment": "j.segment_id"}

EXPERIMENT_COLUMNS = ["experiment_id", "study_id", "channel_id", "campaign", "arms",
                      "start", "end", "planned_end", "status"]
# Most telling first: the list reads left to right as "which test, is it over, what won".
SUMMARY_COLUMNS = [
    "experiment_id", "status", "metric", "verdict", "best_variant", "best_lift_pct",
    "chance_to_beat_control_pct", "p_value", "always_valid_p_holm", "srm_p",
    "control", "control_rate_pct", "best_rate_pct", "users_per_arm", "planned_users_per_arm",
    "study_id", "channel_id", "campaign", "arms", "start", "end", "decision",
]


# --------------------------------------------------------------------------
# Experiments and their arms
# --------------------------------------------------------------------------


def filter_note(f: Filters) -> str:
    """What the site/segment filter does here ('' when neither is set)."""
    if not (f.site or f.segment):
        return ""
    return ("A site or segment filter is set: it narrows leads, eligible, consented and "
            "randomized, but not impressions or clicks, which the ad platforms report per "
            "creative without site or segment. CTR ignores it; lead rate compares the "
            "filtered leads with all clicks.")


def latest_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The latest day with any delivery or funnel data: 'today' for the status."""
    return con.execute(
        "SELECT greatest((SELECT max(day) FROM ad_daily), "
        "(SELECT CAST(max(ts) AS DATE) FROM funnel_event))"
    ).fetchone()[0]


def list_experiments(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """One row per experiment declared in the setup whose campaign passes the study,
    phase and channel filters.

    ``start``/``end`` are the first and last day any arm delivered impressions (whole
    history: they describe the experiment, not the period); ``planned_end`` is the
    campaigns' end date when every campaign of the experiment has one. ``status``,
    against the latest day with data: *not started* (no delivery yet); with a planned
    end, *ended* once it has passed, else *running*; without one, *ended* after
    ``STALE_DAYS`` days without delivery, else *running*.
    """
    return _experiments(con, f, latest_day(con))


def _experiments(con: duckdb.DuckDBPyConnection, f: Filters, today: date | None) -> pd.DataFrame:
    """``list_experiments``, ``today`` being the latest day with data."""
    where, params = f.where(_CAMPAIGN_COLUMNS)
    rows = con.execute(
        f"""WITH arms AS (
                SELECT cr.experiment_id, cr.creative_id, c.study_id, c.channel_id,
                       c.name AS campaign_name, c.end_date AS campaign_end
                FROM creative cr JOIN campaign c USING (campaign_id)
                WHERE cr.experiment_id IS NOT NULL AND cr.experiment_id <> '' AND {where}),
            delivery AS (
                SELECT creative_id, min(day) AS first_day, max(day) AS last_day
                FROM ad_daily
                WHERE impressions > 0 AND creative_id IN (SELECT creative_id FROM arms)
                GROUP BY creative_id)
            SELECT experiment_id,
                   string_agg(DISTINCT study_id, ', ' ORDER BY study_id) AS study_id,
                   string_agg(DISTINCT channel_id, ', ' ORDER BY channel_id) AS channel_id,
                   string_agg(DISTINCT campaign_name, ', ' ORDER BY campaign_name) AS campaign,
                   count(*) AS arms,
                   min(first_day) AS start, max(last_day) AS "end",
                   CASE WHEN count(campaign_end) = count(*) THEN max(campaign_end) END
                       AS planned_end
            FROM arms LEFT JOIN delivery USING (creative_id)
            GROUP BY experiment_id ORDER BY experiment_id""",
        params,
    ).fetchall()
    if not rows:
        return _no_experiments()
    ids, studies, channels, campaigns, arms, starts, ends, planned_ends = (list(c) for c in zip(*rows))
    return pd.DataFrame({
        "experiment_id": ids, "study_id": studies, "channel_id": channels, "campaign": campaigns,
        "arms": np.array(arms, dtype="int64"),
        "start": np.array(starts, dtype=object), "end": np.array(ends, dtype=object),
        "planned_end": np.array(planned_ends, dtype=object),
        "status": [_status(start, end, planned_end, today)
                   for start, end, planned_end in zip(starts, ends, planned_ends)],
    })


def _no_experiments() -> pd.DataFrame:
    """``list_experiments`` without any experiment (typed as an empty query result)."""
    return pd.DataFrame({
        **{col: np.array([], dtype=object) for col in ("experiment_id", "study_id", "channel_id", "campaign")},
        "arms": np.array([], dtype="int64"),
        **{col: np.array([], dtype=float) for col in ("start", "end", "planned_end", "status")},
    })


def _as_date(value: Any) -> date | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date()


def _status(start: date | None, end: date | None, planned_end: date | None, today: date | None) -> str:
    """The status of an experiment delivered from ``start`` to ``end`` (``list_experiments``)."""
    if start is None or today is None:
        return "not started"
    if planned_end is not None:
        # a planned end decides; a pause in delivery before it is still the same test
        return "ended" if planned_end < today else "running"
    if end < today - timedelta(days=STALE_DAYS):
        return "ended"
    return "running"


def arm_counts(con: duckdb.DuckDBPyConnection, f: Filters, experiment_id: str) -> pd.DataFrame:
    """Per arm (creative) of the experiment, control first: impressions and clicks
    delivered in the period (``ad_daily``), and of the leads created in the period whose
    attributed last touch is the creative, how many there are and how many ever became
    eligible, consented and randomized (``journey``).

    Columns: ``arm`` (a readable name: the variant, else the creative name, else its id),
    ``creative_id, name, variant, is_control, planned_share`` and ``COUNT_COLUMNS``.
    Unknown or filtered-out experiments give an empty frame.
    """
    found = _arm_counts(con, f, [experiment_id]).get(experiment_id)
    return _no_arms() if found is None else found


# the arm columns of the query, before the readable ``arm`` label
_ARM_COLUMNS = ["creative_id", "name", "variant", "is_control", "planned_share", *COUNT_COLUMNS]


def _arm_counts(con: duckdb.DuckDBPyConnection, f: Filters, experiment_ids: list[str]) -> dict[str, pd.DataFrame]:
    """``arm_counts`` of several experiments, counted in one query; experiments without
    an arm under the filter are left out."""
    exp_where, exp_params = f.where(_CAMPAIGN_COLUMNS)
    day_where, day_params = f.dates("a.day")  # the arms' creatives are confined by exp_where
    person_where, person_params = f.where(_PERSON_COLUMNS, date_column="j.lead_ts")
    marks = ", ".join("?" for _ in experiment_ids)
    rows = con.execute(
        f"""WITH arms AS (
                SELECT cr.experiment_id, cr.creative_id, cr.name, cr.variant, cr.is_control, cr.planned_share
                FROM creative cr JOIN campaign c USING (campaign_id)
                WHERE cr.experiment_id IN ({marks}) AND {exp_where}),
            ads AS (
                SELECT a.creative_id, sum(a.impressions) AS impressions, sum(a.clicks) AS clicks
                FROM ad_daily a
                WHERE a.creative_id IN (SELECT creative_id FROM arms) AND {day_where}
                GROUP BY a.creative_id),
            persons AS (
                SELECT j.creative_id, count(*) AS leads, count(j.eligible_ts) AS eligible,
                       count(j.consented_ts) AS consented, count(j.randomized_ts) AS randomized
                FROM journey j
                WHERE j.creative_id IN (SELECT creative_id FROM arms) AND {person_where}
                GROUP BY j.creative_id)
            SELECT arms.*, {", ".join(f"coalesce({c}, 0) AS {c}" for c in COUNT_COLUMNS)}
            FROM arms LEFT JOIN ads USING (creative_id) LEFT JOIN persons USING (creative_id)
            ORDER BY arms.experiment_id, arms.is_control DESC, arms.creative_id""",
        [*experiment_ids, *exp_params, *day_params, *person_params],
    ).fetchall()
    per_experiment: dict[str, list[tuple]] = {}
    for experiment_id, *row in rows:
        per_experiment.setdefault(experiment_id, []).append(row)
    return {experiment_id: _arm_frame(arms) for experiment_id, arms in per_experiment.items()}


def _arm_frame(rows: list[tuple]) -> pd.DataFrame:
    """The ``arm_counts`` frame of one experiment's rows (``_ARM_COLUMNS``), typed as
    DuckDB hands such a result to pandas."""
    columns = dict(zip(_ARM_COLUMNS, (list(c) for c in zip(*rows))))
    frame = pd.DataFrame({
        **{col: pd.array(columns[col], dtype="str") for col in ("creative_id", "name", "variant")},
        "is_control": np.array([bool(v) for v in columns["is_control"]], dtype=bool),
        "planned_share": np.array([np.nan if v is None else v for v in columns["planned_share"]], dtype=float),
        **{col: np.array(columns[col], dtype="int64") for col in COUNT_COLUMNS},
    })
    frame.insert(0, "arm", _arm_labels(frame))
    return frame


def _no_arms() -> pd.DataFrame:
    """``arm_counts`` of an experiment without arms under the filter (typed as it always was)."""
    frame = pd.DataFrame({
        **{col: np.array([], dtype=object) for col in ("creative_id", "name", "variant")},
        "is_control": np.array([], dtype=bool), "planned_share": np.array([], dtype=float),
        **{col: np.array([], dtype="int64") for col in COUNT_COLUMNS},
    })
    frame.insert(0, "arm", np.array([], dtype=float))
    return frame


def _arm_labels(arms: pd.DataFrame) -> list[str]:
    """The variant names when they tell the arms apart, else creative names, else ids."""
    for col in ("variant", "name", "creative_id"):
        labels = [str(v) for v in arms[col]]
        if all(labels) and len(set(labels)) == len(labels):
            return labels
    return [str(v) for v in arms["creative_id"]]


def daily_arm_counts(
    con: duckdb.DuckDBPyConnection, f: Filters, experiment_id: str, metric: str,
    arms: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per day and arm: ``day, arm, users, conversions`` of ``metric``, the input of
    ``abtest.cumulative_lift``.

    Delivery counts (impressions, clicks) are on their delivery day; leads on their lead
    day; later stages are counted on the day of the lead they belong to (cohort view),
    so cumulative sums equal ``arm_counts`` of the same period (``arms``: that frame,
    counted here when not given).
    """
    spec = METRICS[metric]
    if arms is None:
        arms = arm_counts(con, f, experiment_id)
    if arms.empty:
        return pd.DataFrame(columns=["day", "arm", "users", "conversions"])
    ids = arms["creative_id"].tolist()
    users = _daily(con, f, ids, spec.users).rename(columns={"n": "users"})
    conversions = _daily(con, f, ids, spec.conversions).rename(columns={"n": "conversions"})
    daily = users.merge(conversions, on=["day", "creative_id"], how="outer")
    daily[["users", "conversions"]] = daily[["users", "conversions"]].fillna(0).astype("int64")
    label = dict(zip(arms["creative_id"], arms["arm"]))
    order = {cid: i for i, cid in enumerate(ids)}
    daily["rank"] = daily["creative_id"].map(order)
    daily = daily.sort_values(["day", "rank"]).reset_index(drop=True)
    daily["arm"] = daily["creative_id"].map(label)
    return daily[["day", "arm", "users", "conversions"]]


_DELIVERY_COUNTS = {"impressions": "a.impressions", "clicks": "a.clicks"}
_PERSON_COUNTS = {"leads": "count(*)", "eligible": "count(j.eligible_ts)",
                  "consented": "count(j.consented_ts)", "randomized": "count(j.randomized_ts)"}


def _daily(con: duckdb.DuckDBPyConnection, f: Filters, ids: list[str], count: str) -> pd.DataFrame:
    """``day, creative_id, n`` for one of ``COUNT_COLUMNS`` (column names from fixed maps)."""
    marks = ", ".join("?" for _ in ids)
    if count in _DELIVERY_COUNTS:
        where, params = f.dates("a.day")  # ids: creatives of an experiment the viewer may see
        sql = (f"SELECT a.day AS day, a.creative_id, sum({_DELIVERY_COUNTS[count]}) AS n "
               f"FROM ad_daily a WHERE a.creative_id IN ({marks}) AND {where} GROUP BY ALL")
    else:
        where, params = f.where(_PERSON_COLUMNS, date_column="j.lead_ts")
        sql = (f"SELECT CAST(j.lead_ts AS DATE) AS day, j.creative_id, {_PERSON_COUNTS[count]} AS n "
               f"FROM journey j WHERE j.creative_id IN ({marks}) AND {where} GROUP BY ALL")
    out = con.execute(sql, [*ids, *params]).df()
    out["day"] = [_as_date(v) for v in out["day"]]
    return out


# --------------------------------------------------------------------------
# Analysis of one experiment
# --------------------------------------------------------------------------


@dataclass
class Analysis:
    """One experiment and metric: the counts and what ``abtest.analyze`` makes of them.

    ``result`` is the dict of ``abtest.analyze`` (None when the counts cannot be
    compared; ``problem`` then says why in plain words). ``verdict`` and ``decision``
    are always set: analyze's, or ``not_enough_data`` with the problem.
    """

    experiment: dict[str, Any]
    metric: Metric
    counts: pd.DataFrame
    planned_users_per_arm: int | None
    result: dict[str, Any] | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.result["verdict"] if self.result else (self.problem or "")

    @property
    def decision(self) -> str:
        return self.result["decision"] if self.result else "not_enough_data"

    @property
    def always_valid_holm(self) -> dict[str, float]:
        """Always-valid (mSPRT) p-value of each variant, Holm-adjusted across variants:
        what the verdict would rest on if every daily look counted."""
        if not self.result:
            return {}
        variants = self.result["arms"][1:]
        adjusted = abtest.holm([a["always_valid_p"] for a in variants])
        return {a["arm"]: p for a, p in zip(variants, adjusted)}

    @property
    def peeking_safe(self) -> bool | None:
        """Does a win (or a loss) still hold on the always-valid p-values?

        None when the verdict declares no winner. A verdict made while peeking already
        rests on them; otherwise every arm the decision names must have a Holm-adjusted
        always-valid p at or below alpha.
        """
        if not self.result or self.decision not in ("variant_wins", "control_wins"):
            return None
        if self.peeking:
            return True
        alpha, adjusted = self.result["alpha"], self.always_valid_holm
        if self.decision == "variant_wins":
            return adjusted[self.result["winner"]] <= alpha
        return all(p <= alpha for p in adjusted.values())

    @property
    def still_needed(self) -> tuple[str, int] | None:
        """The variant that needs the most users before it can be called, and how many
        more per arm: the rule of ``abtest.analyze``'s verdict, so the two agree.

        With a planned sample: the planned size minus the smallest arm. Without one: per
        undecided variant (Holm-adjusted p above alpha), the users per arm needed to
        detect the observed difference or a 10 % relative lift, whichever is fewer, minus
        the smaller of variant and control. None when every variant is decided or no
        estimate exists (no conversions).
        """
        if not self.result:
            return None
        arms, alpha = self.result["arms"], self.result["alpha"]
        open_arms = [a for a in arms[1:] if a["p_decision"] > alpha]
        if not open_arms:
            return None
        if self.planned_users_per_arm is not None:
            current = min(a["users"] for a in arms)
            return open_arms[0]["arm"], max(0, self.planned_users_per_arm - current)
        needs = []
        for arm in open_arms:
            options = [n for n in (arm["users_needed_per_arm"], arm["users_needed_for_mde"]) if n]
            if options:
                smaller = min(arm["users"], arms[0]["users"])
                needs.append((arm["arm"], max(0, min(options) - smaller)))
        return max(needs, key=lambda item: item[1]) if needs else None

    @property
    def peeking(self) -> bool:
        """True while the planned sample is not reached (verdict on always-valid p)."""
        if not self.result or self.planned_users_per_arm is None:
            return False
        return min(a["users"] for a in self.result["arms"]) < self.planned_users_per_arm


def analyse(
    con: duckdb.DuckDBPyConnection, f: Filters, experiment_id: str, metric: str = DEFAULT_METRIC
) -> Analysis | None:
    """Counts and statistics of one experiment for one metric in the period; None when
    the experiment is not declared or the filter excludes it."""
    today = latest_day(con)
    experiment = _experiment(con, f, experiment_id, today)
    if experiment is None:
        return None
    return _analyse(con, f, experiment, METRICS[metric], today=today)


def _experiment(con: duckdb.DuckDBPyConnection, f: Filters, experiment_id: str,
                today: date | None) -> dict[str, Any] | None:
    """The ``list_experiments`` row of one experiment, None when the filter excludes it."""
    experiments = _experiments(con, f, today)
    found = experiments[experiments["experiment_id"] == experiment_id]
    return None if found.empty else found.iloc[0].to_dict()


_UNREAD: Any = object()  # the latest day with data, when not read yet


def _analyse(
    con: duckdb.DuckDBPyConnection, f: Filters, experiment: dict[str, Any], spec: Metric,
    counts: pd.DataFrame | None = None, today: date | None = _UNREAD,
) -> Analysis:
    """The analysis of one metric; ``counts`` (``arm_counts`` of the same filter) are
    counted here when not given, so several metrics can share one count; so is
    ``today`` (``latest_day``)."""
    if counts is None:
        counts = arm_counts(con, f, experiment["experiment_id"])
    planned = planned_users_per_arm(con, f, experiment, spec, today=today)
    analysis = Analysis(experiment, spec, counts, planned)
    analysis.problem = _problem(counts, spec)
    if analysis.problem is None:
        analysis.result = _analyze_counts(counts, spec, planned)
    analysis.notes = _notes(analysis, f)
    return analysis


def planned_users_per_arm(
    con: duckdb.DuckDBPyConnection, f: Filters, experiment: Mapping[str, Any], spec: Metric,
    today: date | None = _UNREAD,
) -> int | None:
    """Users per arm the experiment will have reached at its planned end, or None.

    Known only for a running experiment whose campaigns have an end date: the smallest
    arm's users over the whole history so far, extrapolated at the same daily pace to
    the planned end. Only user counts enter (never conversions), so the plan cannot
    chase the result; it tells ``abtest.analyze`` that looks before then are interim
    looks, judged on the always-valid p-value. ``today``: the latest day with data
    (``latest_day``), read here when not given.
    """
    if today is _UNREAD:
        today = latest_day(con)
    start, planned_end = experiment["start"], experiment["planned_end"]
    if experiment["status"] != "running" or planned_end is None or start is None or today is None:
        return None
    history = arm_counts(con, f.without("start", "end"), experiment["experiment_id"])
    smallest = int(history[spec.users].min()) if not history.empty else 0
    elapsed = (today - start).days + 1
    total = (planned_end - start).days + 1
    if smallest <= 0 or elapsed <= 0 or total < elapsed:
        return None
    return int(math.ceil(smallest * total / elapsed))


def _problem(counts: pd.DataFrame, spec: Metric) -> str | None:
    """Why the arms cannot be compared on ``spec`` (None when they can)."""
    if len(counts) < 2:
        return "Only one creative is declared in this experiment: there is nothing to compare."
    for arm, users, conversions in zip(counts["arm"].tolist(), counts[spec.users].tolist(),
                                       counts[spec.conversions].tolist()):
        if users == 0:
            return (f"Not enough data: {arm} has no {spec.users} in the period, so "
                    f"{spec.label} cannot be compared yet.")
        if conversions > users:
            return (f"Cannot compare {spec.label}: {arm} has more {spec.conversions} "
                    f"({conversions:,}) than {spec.users} ({users:,}) in the period. Leads can "
                    "come from clicks before the period or clicks the platform did not "
                    "report; widen the date range.")
    return None


def _arms_for(counts: pd.DataFrame, spec: Metric) -> list[abtest.Arm]:
    """The arms as ``abtest.Arm`` (control first); planned shares as weights when every
    arm has a positive one, else None (equal shares)."""
    shares = counts["planned_share"].tolist()
    planned = all(share == share and share > 0 for share in shares)  # NaN: no planned share
    return [
        abtest.Arm(arm, int(users), int(conversions), float(share) if planned else None)
        for arm, users, conversions, share in zip(counts["arm"].tolist(), counts[spec.users].tolist(),
                                                  counts[spec.conversions].tolist(), shares)
    ]


# analyses already made, by what they are made of: the statistics (Fisher's exact test,
# numerical integration) cost more than counting, and counts repeat across filters
_ANALYSES: dict[tuple, dict[str, Any]] = {}
_ANALYSES_LOCK = threading.Lock()


def _analyze_counts(counts: pd.DataFrame, spec: Metric, planned: int | None) -> dict[str, Any]:
    """``_analysis_of`` the counts, made once per distinct input (a copy each time, so
    that a caller may change it)."""
    columns = ("arm", "planned_share", "impressions", "clicks", spec.users, spec.conversions)
    key = (spec.key, planned, *(tuple(None if v != v else v for v in counts[col].tolist()) for col in columns))
    with _ANALYSES_LOCK:
        result = _ANALYSES.get(key)
    if result is None:
        result = _analysis_of(counts, spec, planned)
        with _ANALYSES_LOCK:
            if len(_ANALYSES) > 1024:  # counts of old data are not asked for again
                _ANALYSES.clear()
            _ANALYSES[key] = result
    return copy.deepcopy(result)


def _analysis_of(counts: pd.DataFrame, spec: Metric, planned: int | None) -> dict[str, Any]:
    """``abtest.analyze`` on the arm counts, with the sample-ratio check on impressions.

    The planned split is a split of impressions (the unit the platform randomises).
    Clicks and leads per arm depend on how well each creative works, so testing them
    against the planned split would flag every creative that wins as a mismatch: for
    those metrics the arms are weighted by their own users (so analyze's check is
    neutral) and the check is redone on impressions.
    """
    arms = _arms_for(counts, spec)
    if spec.users == "impressions":
        return abtest.analyze(arms, planned_users_per_arm=planned)
    neutral = [replace(a, weight=float(a.users)) for a in arms]
    result = abtest.analyze(neutral, planned_users_per_arm=planned)
    for row, arm in zip(result["arms"], arms):
        row["planned_share"] = _planned_share(arms, arm)
    srm_p = _impressions_srm(counts)
    result["srm_p"], result["srm"] = srm_p, srm_p is not None and srm_p < abtest.SRM_ALPHA
    result["method"]["srm_p"] = ("chi-square goodness of fit of impressions to planned shares "
                                 f"(impressions are the randomised unit); SRM if p < "
                                 f"{abtest.SRM_ALPHA:g}")
    if result["srm"]:
        result.update(decision="srm", winner=None, verdict=(
            f"Sample ratio mismatch in impressions (p = {srm_p:.1e}): the split of "
            "impressions is not what was planned, do not trust this test."))
    return result


def _planned_share(arms: list[abtest.Arm], arm: abtest.Arm) -> float | None:
    if any(a.weight is None for a in arms):
        return 1 / len(arms)
    return arm.weight / sum(a.weight for a in arms)


def _impressions_srm(counts: pd.DataFrame) -> float | None:
    """Sample-ratio-mismatch p-value of impressions against the planned shares
    (None without any impressions; 0 when an arm got none: that is a mismatch)."""
    impressions = [int(v) for v in counts["impressions"]]
    if sum(impressions) <= 0:
        return None
    if min(impressions) == 0:
        return 0.0
    return abtest.srm_p_value(_arms_for(counts, METRICS["ctr"]))


def _notes(analysis: Analysis, f: Filters) -> list[str]:
    notes = []
    if not analysis.counts.empty and not analysis.counts["is_control"].any():
        notes.append(f"No creative is marked as control: {analysis.counts['arm'].iloc[0]} "
                     "is used as the control.")
    elif int(analysis.counts["is_control"].sum()) > 1:
        notes.append(f"Several creatives are marked as control: {analysis.counts['arm'].iloc[0]} "
                     "is used as the control, the others are compared as variants.")
    if analysis.metric.conversions in ("consented", "randomized"):
        notes.append("Leads of the last weeks may still consent or be randomized: a young "
                     "cohort makes these rates look lower than they will be.")
    if analysis.metric.users != "impressions":
        notes.append("Only impressions are split at random between the creatives; clicks and "
                     "leads are people who chose to respond, so a difference in a later rate "
                     "can partly reflect who responds to each creative.")
    if analysis.metric.person_based:
        notes.append("Leads are attributed to a creative only for persons whose tracking "
                     "consent was granted at the click; this lowers the counts of every "
                     "creative alike.")
    note = filter_note(f)
    if note:
        notes.append(note)
    if analysis.result:
        notes.extend(analysis.result.get("notes", []))
    return notes


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

ARM_TABLE_COLUMNS = [
    "arm", "creative_id", "role", "planned_share_pct", "users", "conversions",
    "rate_pct", "rate_ci_low_pct", "rate_ci_high_pct",
    "diff_pp", "diff_ci_low_pp", "diff_ci_high_pp",
    "rel_lift_pct", "rel_lift_ci_low_pct", "rel_lift_ci_high_pct",
    "p_z", "p_fisher", "p_holm", "p_always_valid", "p_verdict",
    "always_valid_ci_low_pp", "always_valid_ci_high_pp",
    "chance_to_beat_control_pct", "mde_pp", "users_needed_per_arm", "users_still_needed",
]


def arm_table(analysis: Analysis) -> pd.DataFrame:
    """The detail table: one row per arm, control first, rates in percent and
    differences in percentage points.

    ``users``/``conversions`` are renamed after the metric's units (for CTR:
    ``impressions``/``clicks``). Per arm: rate with its 95 % Wilson interval; for each
    variant: difference to control with the Newcombe interval, relative lift with the
    log risk-ratio interval, p-values (pooled z-test, Fisher's exact, Holm-adjusted
    z, always-valid mSPRT, and the Holm-adjusted one the verdict uses), the
    always-valid interval, the Beta(1,1) chance to beat control, the minimum
    detectable difference now (80 % power) and the users per arm needed to detect the
    observed difference (a 10 % relative lift when there is none).
    """
    spec = analysis.metric
    if analysis.result is None:
        frame = analysis.counts[["arm", "creative_id"]].copy()
        frame["role"] = ["control" if i == 0 else "variant" for i in range(len(frame))]
        frame["users"] = analysis.counts[spec.users]
        frame["conversions"] = analysis.counts[spec.conversions]
        frame = frame.reindex(columns=ARM_TABLE_COLUMNS)
    else:
        ids = dict(zip(analysis.counts["arm"], analysis.counts["creative_id"]))
        frame = pd.DataFrame([_arm_row(row, ids) for row in analysis.result["arms"]],
                             columns=ARM_TABLE_COLUMNS)
    return frame.rename(columns={"users": spec.users, "conversions": spec.conversions})


def _pct(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(100 * value, digits)


def _sig(value: float | None) -> float | None:
    """A p-value to three significant digits (small ones stay visible)."""
    return None if value is None else float(f"{value:.3g}")


def _bound(pair: list | None, index: int) -> float | None:
    return None if pair is None else _pct(pair[index])


def _arm_row(row: dict[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    control = row["is_control"]
    out = {
        "arm": row["arm"], "creative_id": ids.get(row["arm"]),
        "role": "control" if control else "variant",
        "planned_share_pct": _pct(row["planned_share"], 1),
        "users": row["users"], "conversions": row["conversions"],
        "rate_pct": _pct(row["rate"]),
        "rate_ci_low_pct": _bound(row["rate_ci"], 0), "rate_ci_high_pct": _bound(row["rate_ci"], 1),
    }
    if control:
        return out
    out.update({
        "diff_pp": _pct(row["diff"]),
        "diff_ci_low_pp": _bound(row["diff_ci"], 0), "diff_ci_high_pp": _bound(row["diff_ci"], 1),
        "rel_lift_pct": _pct(row["rel_lift"], 1),
        "rel_lift_ci_low_pct": None if row["rel_lift_ci"] is None else _pct(row["rel_lift_ci"][0], 1),
        "rel_lift_ci_high_pct": None if row["rel_lift_ci"] is None else _pct(row["rel_lift_ci"][1], 1),
        "p_z": _sig(row["p_value"]), "p_fisher": _sig(row["p_fisher"]),
        "p_holm": _sig(row["p_adjusted"]), "p_always_valid": _sig(row["always_valid_p"]),
        "p_verdict": _sig(row["p_decision"]),
        "always_valid_ci_low_pp": _bound(row["always_valid_ci"], 0),
        "always_valid_ci_high_pp": _bound(row["always_valid_ci"], 1),
        "chance_to_beat_control_pct": _pct(row["chance_to_beat_control"], 1),
        "mde_pp": _pct(row["mde_abs"]),
        "users_needed_per_arm": row["users_needed_per_arm"],
        "users_still_needed": row["users_still_needed"],
    })
    return out


def lift_over_time(
    con: duckdb.DuckDBPyConnection, f: Filters, experiment_id: str, metric: str = DEFAULT_METRIC,
    planned: int | None = None, arms: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cumulative difference of each variant to control, day by day
    (``abtest.cumulative_lift``: Newcombe interval and always-valid mSPRT interval,
    tuned to ``planned`` users per arm when given). ``arms``: the experiment's
    ``arm_counts`` under the same filter, when already counted.

    Empty when the counts cannot be followed over time; ``frame.attrs['problem']``
    then says why.
    """
    if arms is None:
        arms = arm_counts(con, f, experiment_id)
    daily = daily_arm_counts(con, f, experiment_id, metric, arms)
    empty = pd.DataFrame(columns=abtest.CUMULATIVE_COLUMNS)
    if daily["arm"].nunique() < 2:
        empty.attrs["problem"] = "Not enough data: fewer than two arms have counts in the period."
        return empty
    control = arms["arm"].iloc[0]
    if control not in set(daily["arm"]):
        empty.attrs["problem"] = f"Not enough data: the control {control} has no counts in the period."
        return empty
    try:
        return abtest.cumulative_lift(daily, control=control, planned_users_per_arm=planned)
    except abtest.AbTestInputError as exc:
        empty.attrs["problem"] = f"The lift over time cannot be drawn: {exc.problem}."
        return empty


def summary(
    con: duckdb.DuckDBPyConnection, f: Filters, primary: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The list of experiments with their verdict on the primary metric.

    One row per experiment (``list_experiments``): status, primary metric (CTR unless
    ``primary`` maps the experiment to another key of ``METRICS``), users per arm
    (smallest arm), control rate, the best variant (highest rate) with its rate,
    relative lift over control and Beta(1,1) chance to beat control, the
    Holm-adjusted p-value the verdict used for it, its always-valid p-value
    (Holm-adjusted across variants, see ``Analysis.always_valid_holm``), the
    sample-ratio-mismatch p-value, the planned users per arm when known, and the
    verdict sentence and decision of ``abtest.analyze``.
    """
    today = latest_day(con)
    experiments = _experiments(con, f, today).to_dict("records")
    # every experiment's arms in one query
    counts = _arm_counts(con, f, [e["experiment_id"] for e in experiments]) if experiments else {}
    rows = []
    for experiment in experiments:
        metric = (primary or {}).get(experiment["experiment_id"], DEFAULT_METRIC)
        arms = counts.get(experiment["experiment_id"])
        rows.append(_summary_row(_analyse(con, f, experiment, METRICS[metric],
                                          _no_arms() if arms is None else arms, today)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _summary_row(analysis: Analysis) -> dict[str, Any]:
    out = {col: analysis.experiment.get(col) for col in EXPERIMENT_COLUMNS if col != "planned_end"}
    out.update(metric=analysis.metric.label, decision=analysis.decision,
               verdict=analysis.verdict, planned_users_per_arm=analysis.planned_users_per_arm)
    result = analysis.result
    if result is None:
        if not analysis.counts.empty:
            out["control"] = analysis.counts["arm"].iloc[0]
        return out
    control, variants = result["arms"][0], result["arms"][1:]
    best = max(variants, key=lambda r: r["rate"])
    out.update(
        users_per_arm=min(r["users"] for r in result["arms"]),
        control=control["arm"], control_rate_pct=_pct(control["rate"]),
        best_variant=best["arm"], best_rate_pct=_pct(best["rate"]),
        best_lift_pct=_pct(best["rel_lift"], 1),
        chance_to_beat_control_pct=_pct(best["chance_to_beat_control"], 1),
        p_value=_sig(best["p_decision"]),
        always_valid_p_holm=_sig(analysis.always_valid_holm[best["arm"]]),
        srm_p=_sig(result["srm_p"]),
    )
    return out


# --------------------------------------------------------------------------
# All metrics of one experiment
# --------------------------------------------------------------------------

OVERVIEW_ADJUSTMENTS = ("none", "bh")
OVERVIEW_COLUMNS = ["metric", "arm", "control", "control_rate_pct", "rate_pct", "diff_pp",
                    "p_holm", "p_bh", "significant"]


def metrics_overview(
    con: duckdb.DuckDBPyConnection, f: Filters, experiment_id: str, adjust: str = "none"
) -> pd.DataFrame:
    """Every metric of one experiment at a glance: one row per (metric, variant), metrics
    in the order of ``METRICS``, variants in arm order.

    Per row: control and variant rate (percent), the difference (percentage points),
    ``p_holm`` (``abtest.analyze``'s ``p_adjusted``: pooled z-test, Holm-adjusted across
    the variants of that metric) and ``significant`` (p at or below
    ``abtest.DEFAULT_ALPHA``). With ``adjust="bh"`` there is also ``p_bh``: the
    Benjamini-Hochberg adjustment of ``p_holm`` across the experiment's metrics, per
    variant (``bh_across_metrics``), and ``significant`` is judged on it.

    A metric whose arms cannot be compared (``Analysis.problem``) keeps its rows with
    no p-value; it takes no part in the adjustment. The counts are those of
    ``arm_counts``, counted once for all metrics. Unknown or filtered-out experiments
    give an empty frame.
    """
    if adjust not in OVERVIEW_ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {OVERVIEW_ADJUSTMENTS}, not {adjust!r}")
    columns = [c for c in OVERVIEW_COLUMNS if adjust == "bh" or c != "p_bh"]
    today = latest_day(con)
    experiment = _experiment(con, f, experiment_id, today)
    if experiment is None:
        return pd.DataFrame(columns=columns)
    counts = arm_counts(con, f, experiment_id)
    rows = [row for spec in METRICS.values()
            for row in _overview_rows(_analyse(con, f, experiment, spec, counts, today))]
    frame = pd.DataFrame(rows, columns=OVERVIEW_COLUMNS[:-2])
    frame["p_holm"] = frame["p_holm"].astype(float)
    if adjust == "bh":
        frame["p_bh"] = bh_across_metrics(frame)
    frame["significant"] = _significant(frame["p_bh" if adjust == "bh" else "p_holm"])
    return frame[columns]


def _overview_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """The variants of one analysis as overview rows (no numbers when it has no result)."""
    label = analysis.metric.label
    if analysis.result is None:
        arms = analysis.counts["arm"].tolist()
        return [{"metric": label, "arm": arm, "control": arms[0]} for arm in arms[1:]]
    control, variants = analysis.result["arms"][0], analysis.result["arms"][1:]
    return [{"metric": label, "arm": row["arm"], "control": control["arm"],
             "control_rate_pct": _pct(control["rate"]), "rate_pct": _pct(row["rate"]),
             "diff_pp": _pct(row["diff"]), "p_holm": row["p_adjusted"]}
            for row in variants]


def bh_across_metrics(frame: pd.DataFrame) -> pd.Series:
    """Benjamini-Hochberg (1995) adjustment of ``p_holm`` across the metrics, separately
    for each variant (``arm``): the family is one variant's comparisons with control on
    every metric that has a p-value (``abtest.benjamini_hochberg``, equal to
    statsmodels ``multipletests(method='fdr_bh')``). Rows without ``p_holm`` stay NaN."""
    adjusted = pd.Series(float("nan"), index=frame.index, dtype=float)
    for _, rows in frame.dropna(subset=["p_holm"]).groupby("arm", sort=False):
        adjusted[rows.index] = abtest.benjamini_hochberg(rows["p_holm"].tolist())
    return adjusted


def _significant(p_values: pd.Series, alpha: float = abtest.DEFAULT_ALPHA) -> pd.Series:
    """p at or below alpha; None where there is no p-value."""
    return pd.Series([None if pd.isna(p) else bool(p <= alpha) for p in p_values],
                     index=p_values.index, dtype=object)
