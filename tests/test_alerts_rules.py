"""Alert rules: every kind parses with its defaults, every invalid rule is refused with
the reason a manager can act on, and rules survive a round trip through the store."""
import json

import pytest

from cockpit.alerts import rules as rl
from cockpit.filters import Filters
from cockpit.store import Store, migrations

VALID = {
    "threshold": {"name": "Cost per randomized ST-101", "kind": "threshold", "kpi": "cost_per_randomized",
                  "scope": "?study=A", "params": {"op": ">", "value": 5000}, "recipients": "ops@example.org"},
    "change": {"name": "CTR down 30%", "kind": "change", "kpi": "ctr_pct", "scope": "?study=A&channel=facebook",
               "params": {"direction": "down", "pct": 30}, "recipients": ["a@example.org", "b@example.org"]},
    "drift": {"name": "CTR drift", "kind": "drift", "kpi": "ctr_pct", "scope": "?channel=facebook",
              "params": {"method": "ewma", "direction": "down"}, "recipients": "a@example.org"},
    "pace": {"name": "Pace A", "kind": "pace", "scope": "?study=A", "params": {"min_pct": 80},
             "recipients": "a@example.org"},
    "stale": {"name": "Meta export", "kind": "stale", "params": {"source": "meta_ads", "max_hours": 48},
              "recipients": "a@example.org"},
}


def with_(base: str, **changes) -> dict:
    data = json.loads(json.dumps(VALID[base]))
    params = changes.pop("params", None)
    if params:
        data["params"].update(params)
    data.update(changes)
    return data


@pytest.mark.parametrize("kind", list(VALID))
def test_each_kind_parses_with_defaults(kind):
    rule = rl.parse_rule(VALID[kind])
    assert rule.kind == kind
    other_method = {"k", "h"} if kind == "drift" else set()  # an EWMA rule keeps no CUSUM parameters
    assert set(rule.params) == set(rl.DEFAULT_PARAMS[kind]) - other_method
    assert rule.pending_hours == 24 and rule.repeat_hours == 168 and rule.clear_hours == 72
    assert rule.recipients and all("@" in r for r in rule.recipients)
    again = rl.parse_rule(rule.to_row())  # the stored form parses back to the same rule
    assert again == rule


def test_defaults_are_the_stated_detector_parameters():
    drift = rl.parse_rule(VALID["drift"]).params
    assert (drift["lambda"], drift["L"], drift["baseline_days"], drift["monitor_days"]) == (0.2, 3.0, 28, 14)
    cusum = rl.parse_rule(with_("drift", params={"method": "cusum"})).params
    assert (cusum["k"], cusum["h"]) == (0.5, 5.0) and "lambda" not in cusum
    assert "λ = 0.2" in rl.describe(rl.parse_rule(VALID["drift"]))


INVALID = [
    ({"name": ""}, "threshold", "Name: give the rule a name"),
    ({"name": "two\nlines"}, "threshold", "Name: one line of text"),
    ({"name": "x" * 101}, "threshold", "Name: at most 100 characters"),
    ({"kind": "magic"}, "threshold", "Kind: choose one of threshold, change, drift, pace, stale"),
    ({"kpi": None}, "threshold", "KPI: a threshold rule watches a KPI"),
    ({"kpi": "happiness"}, "drift", "KPI: unknown KPI 'happiness'"),
    ({"params": {"value": None}}, "threshold", "Threshold: a number is required"),
    ({"params": {"value": "lots"}}, "threshold", "Threshold: a number is required"),
    ({"params": {"value": -1}}, "threshold", "Threshold: must not be negative"),
    ({"kpi": "ctr_pct", "params": {"value": 150}}, "threshold", "CTR is a percentage; give a value from 0 to 100"),
    ({"params": {"op": "<", "value": 0}}, "threshold", "'< 0' would never fire"),
    ({"params": {"op": "="}}, "threshold", "Comparison: '>' (alert when above) or '<'"),
    ({"params": {"window_days": 0}}, "threshold", "Window: whole days from 1 to 365"),
    ({"params": {"window_days": 2.5}}, "threshold", "Window: whole days from 1 to 365"),
    ({"params": {"pct": 120}}, "change", "a fall of 100% or more never happens"),
    ({"params": {"pct": 0}}, "change", "Change: a percentage from 1 to 1000"),
    ({"params": {"direction": "sideways"}}, "change", "Direction: one of down, up, either"),
    ({"params": {"lambda": 0}}, "drift", "EWMA lambda: the weight of the newest day"),
    ({"params": {"L": 10}}, "drift", "EWMA L: the width of the control limits"),
    ({"params": {"method": "cusum", "h": 0.5}}, "drift", "CUSUM h: the decision limit"),
    ({"params": {"method": "cusum", "k": -1}}, "drift", "CUSUM k: the allowance"),
    ({"params": {"method": "shewhart"}}, "drift", "Method: one of ewma, cusum"),
    ({"params": {"baseline_days": 5}}, "drift", "Baseline: whole days from 14 to 365"),
    ({"kpi": "cpl", "scope": "?site=A1"}, "threshold",
     "Cost per lead needs spend, which is recorded per study and channel; it cannot be split by site"),
    ({"scope": "?channel=facebook"}, "pace", "enrolment targets are set per study"),
    ({"params": {"min_pct": 0}}, "pace", "Minimum pace: a percentage of the target curve from 1 to 100"),
    ({"params": {"source": "carrier_pigeon"}}, "stale", "Source: choose one of meta_ads"),
    ({"scope": "?site=A1"}, "stale", "the Meta Ads export cannot be split by site"),
    ({"params": {"max_hours": 0}}, "stale", "Maximum age: hours from 1 to 8760"),
    ({"scope": "?study=A&start=2026-01-01"}, "threshold", "a rule has no date range"),
    ({"scope": "?study=A;DROP"}, "threshold", "Scope: study: not a valid id"),
    ({"recipients": "bob@"}, "threshold", "Recipients: 'bob@' is not an e-mail address"),
    ({"recipients": "Bob <bob@example.org>"}, "threshold", "is not an e-mail address"),
    ({"recipients": "a@example.org\r\nBcc: c@example.org"}, "threshold", "'Bcc:' is not an e-mail address"),
    ({"recipients": ""}, "threshold", "Recipients: at least one e-mail address"),
    ({"recipients": [f"p{i}@example.org" for i in range(51)]}, "threshold", "at most 50 addresses"),
    ({"pending_hours": -1}, "threshold", "Pending period: hours from 0 to 2160"),
    ({"repeat_hours": 0.5}, "threshold", "Repeat interval: at least 1 hour"),
    ({"clear_hours": "soon"}, "threshold", "Clear period: a number is required"),
]


@pytest.mark.parametrize("changes,base,reason", INVALID, ids=[r for _, _, r in INVALID])
def test_invalid_rules_are_refused_with_their_reason(changes, base, reason):
    with pytest.raises(rl.RuleError) as refused:
        rl.parse_rule(with_(base, **changes))
    assert any(reason in r for r in refused.value.reasons), refused.value.reasons


def test_every_reason_is_given_at_once():
    data = with_("threshold", name="", recipients="nobody", params={"value": None, "window_days": 0})
    with pytest.raises(rl.RuleError) as refused:
        rl.parse_rule(data)
    assert [r.split(":")[0] for r in refused.value.reasons] == ["Name", "Threshold", "Window", "Recipients"]


def test_scope_is_checked_against_the_store(tiny_con):
    catalog = rl.Catalog.from_store(tiny_con)
    assert rl.parse_rule(VALID["threshold"], catalog).scope == Filters.make(study="A")
    with pytest.raises(rl.RuleError) as refused:
        rl.parse_rule(with_("threshold", kpi="leads", scope="?study=ZZ&site=A1&channel=tiktok"), catalog)
    assert "Scope: unknown study ZZ." in refused.value.reasons
    assert "Scope: unknown channel tiktok." in refused.value.reasons
    assert not any("site" in r for r in refused.value.reasons)


def test_recipients_are_split_trimmed_and_deduplicated():
    rule = rl.parse_rule(with_("threshold", recipients=" a@example.org; B@example.org,\nA@example.org "))
    assert rule.recipients == ("a@example.org", "B@example.org")


def test_descriptions_say_the_condition_in_words():
    assert rl.describe(rl.parse_rule(VALID["threshold"])) == \
        "Cost per randomized over the last 28 days above €5,000.00"
    assert rl.describe(rl.parse_rule(VALID["change"])) == \
        "CTR over the last 7 days down 30% or more against the 28 days before"
    assert rl.describe(rl.parse_rule(VALID["pace"])) == "randomized to date below 80% of the target curve"
    assert rl.describe(rl.parse_rule(VALID["stale"])) == \
        "no new Meta Ads export data for more than 48 hours"


def test_the_migration_adds_the_alert_tables(tmp_path):
    assert [name for _, name, _ in migrations()][:2] == ["0001_initial.sql", "0002_alerts.sql"]
    with Store(tmp_path / "a.duckdb") as store:
        tables = {t for (t,) in store.reader().execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"alert_rule", "alert_state", "alert_evaluation", "alert_action", "alert_outbox"} <= tables


def test_rules_round_trip_through_the_store_and_edits_are_logged(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        rule = rl.parse_rule(VALID["drift"])
        rule_id = rl.save_rule(store, rule, "maria")
        stored = rl.get_rule(store.reader(), rule_id)
        assert stored.rule_id == rule_id and stored.params == rule.params and stored.scope == rule.scope
        edited = rl.parse_rule({**stored.to_row(), "name": "CTR drift (edited)", "recipients": "x@example.org"})
        assert rl.save_rule(store, edited, "jon") == rule_id
        assert [r.name for r in rl.load_rules(store.reader())] == ["CTR drift (edited)"]
        actions = store.reader().execute(
            "SELECT actor, action FROM alert_action WHERE rule_id = ? ORDER BY action_id", [rule_id]).fetchall()
        assert actions == [("maria", "created"), ("jon", "edited")]
        gone = rl.parse_rule({**stored.to_row(), "rule_id": 999})
        with pytest.raises(rl.RuleError, match="does not exist"):
            rl.save_rule(store, gone, "jon")
