"""Grid rows and plain chart dicts of ``cockpit.ui``."""
from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash._utils import to_json

from cockpit import ui


def test_records_are_json_safe_python_values():
    frame = pd.DataFrame({
        "id": ["a", "b"],
        "n": np.array([3, 4], dtype="int64"),
        "ok": [True, False],
        "rate": [0.5, np.nan],
        "rank": pd.array([1, None], dtype="Int64"),
        "day": [date(2026, 3, 2), None],
        "ts": pd.to_datetime(["2026-03-02 10:00", None]),
        "mixed": [np.float64(1.5), np.nan],
        "note": pd.array(["x", None], dtype="str"),
    })
    rows = ui.records(frame)
    assert rows == [
        {"id": "a", "n": 3, "ok": True, "rate": 0.5, "rank": 1, "day": "2026-03-02",
         "ts": "2026-03-02T10:00:00", "mixed": 1.5, "note": "x"},
        {"id": "b", "n": 4, "ok": False, "rate": None, "rank": None, "day": None,
         "ts": None, "mixed": None, "note": None},
    ]
    assert [type(v) for v in rows[0].values()] == [str, int, bool, float, int, str, str, float, str]
    json.dumps(rows, allow_nan=False)


def test_records_of_frames_without_rows_or_columns():
    assert ui.records(pd.DataFrame(columns=["a", "b"])) == []
    assert ui.records(pd.DataFrame(index=[0, 1])) == [{}, {}]


def test_records_equal_the_frames_own_records():
    """Column by column gives what pandas' records give, missing values as None."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": rng.normal(size=50), "k": rng.integers(0, 9, 50),
                          "s": [f"s{i}" for i in range(50)]})
    frame.loc[::7, "x"] = np.nan
    expected = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert ui.records(frame) == expected


def test_a_plain_figure_is_sent_as_plotly_would_send_it():
    """A chart built as a dict carries plotly's default look, so the browser draws it
    as it would draw the same ``go.Figure``."""
    layout = {"height": 300, "yaxis": {"title": {"text": "persons"}}}
    data = [{"type": "bar", "x": ["a", "b"], "y": [1, 2], "name": "n"}]
    plain = json.loads(to_json(ui.figure(data, layout)))
    built = json.loads(to_json(go.Figure(go.Bar(x=["a", "b"], y=[1, 2], name="n"),
                                         layout={"height": 300, "yaxis_title": "persons"})))
    assert plain == built
