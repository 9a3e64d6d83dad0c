"""The Filters value: validation, URL round trip, and SQL with bound parameters."""
from datetime import date

import pytest

from cockpit.filters import PERIODS, FilterError, Filters, period_dates


def test_url_round_trip():
    f = Filters.make(study=["ST-2", "ST-1"], channel="facebook", start="2026-01-01", end="2026-03-31")
    assert f.to_query() == "?study=ST-1&study=ST-2&channel=facebook&start=2026-01-01&end=2026-03-31"
    assert Filters.from_query(f.to_query()) == f
    assert Filters.from_query("") == Filters() and Filters().to_query() == ""


@pytest.mark.parametrize("query, message", [
    ("?study=x';DROP TABLE study;--", "study: not a valid id"),
    ("?start=2026-13-01", "start: not a date"),
    ("?start=2026-03-01&end=2026-02-01", "start 2026-03-01 is after end 2026-02-01"),
])
def test_bad_values_are_refused_naming_the_field(query, message):
    with pytest.raises(FilterError, match=message):
        Filters.from_query(query)


def test_where_binds_values_and_maps_columns():
    f = Filters.make(study="A", phase="II", site="S1", start="2026-01-01", end="2026-01-31")
    sql, params = f.where({"study": "j.study_id", "site": "j.site_id"}, date_column="j.ts")
    assert sql == ("j.study_id IN (?) AND j.study_id IN (SELECT study_id FROM study WHERE phase IN (?)) "
                   "AND j.site_id IN (?) AND j.ts >= ? AND j.ts < ? + INTERVAL 1 DAY")
    assert params == ["A", "II", "S1", date(2026, 1, 1), date(2026, 1, 31)]


def test_unsupported_dimensions_are_reported():
    f = Filters.make(site="S1", segment="seniors", channel="facebook")
    assert f.unsupported({"study": "s", "channel": "c"}) == ["site", "segment"]


def test_slug_and_label():
    f = Filters.make(study="ST-1", start="2026-01-01")
    assert f.slug() == "study-ST-1_2026-01-01_to_today"
    assert f.label() == "study: ST-1; dates: 2026-01-01 to today"
    assert Filters().slug() == "all"


def test_a_phase_with_a_slash_is_a_filter_like_any_other():
    f = Filters.make(phase="I/II")
    assert f.phase == ("I/II",)
    assert f.to_query() == "?phase=I%2FII" and Filters.from_query(f.to_query()) == f
    assert f.slug() == "phase-I-II"


def test_from_url_gives_none_for_an_invalid_link():
    from cockpit.filters import from_url

    assert from_url("?study=ST-1") == Filters.make(study="ST-1")
    assert from_url("?start=2026-13-01") is None


def test_the_viewers_scope_confines_every_query_built_from_a_filter():
    from dataclasses import replace

    from cockpit.filters import NOTHING, Scope

    site_user = replace(Filters.make(study="A"), scope=Scope(sites=("A1",)))
    assert site_user.where({"study": "j.study_id", "site": "j.site_id"}) == (
        "j.study_id IN (?) AND j.site_id IN (?)", ["A", "A1"])
    # a query that cannot be cut by site (spend is per study) returns nothing to them
    assert site_user.where({"study": "s.study_id"}) == ("s.study_id IN (?) AND FALSE", ["A"])
    # clearing a dimension keeps the confinement
    assert site_user.without("study").where({"site": "x"}) == ("x IN (?)", ["A1"])
    manager = Filters(scope=Scope(studies=("A", "B")))
    assert manager.where({"site": "x"}) == (
        "x IN (SELECT site_id FROM site WHERE study_id IN (?, ?))", ["A", "B"])
    assert Filters(scope=NOTHING).where({"study": "s", "site": "x"})[0] == "FALSE AND FALSE"
    # outside a web request (command line, scheduler) there is no limit
    assert Filters().where({"study": "s"}) == ("TRUE", [])


@pytest.mark.parametrize("today, name, expected", [
    (date(2026, 11, 22), "last_4_weeks", (date(2026, 10, 26), None)),
    (date(2026, 11, 22), "this_quarter", (date(2026, 10, 1), None)),
    (date(2026, 11, 22), "last_quarter", (date(2026, 7, 1), date(2026, 9, 30))),
    (date(2026, 11, 22), "year_to_date", (date(2026, 1, 1), None)),
    (date(2026, 1, 1), "this_quarter", (date(2026, 1, 1), None)),
    (date(2026, 2, 14), "last_quarter", (date(2025, 10, 1), date(2025, 12, 31))),
    (date(2024, 3, 1), "last_4_weeks", (date(2024, 2, 3), None)),  # a leap year's February
])
def test_period_presets_on_a_given_day(today, name, expected):
    assert period_dates(name, today) == expected


def test_an_unknown_period_is_refused():
    assert list(PERIODS) == ["last_4_weeks", "this_quarter", "last_quarter", "year_to_date"]
    with pytest.raises(FilterError, match="period: unknown preset 'last_week'"):
        period_dates("last_week", date(2026, 11, 22))
