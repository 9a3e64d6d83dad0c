"""CSV export: the same rows, safe to open in a spreadsheet."""
import io

import pandas as pd

from cockpit import export
from cockpit.filters import Filters


def test_formula_cells_are_neutralised_and_numbers_stay_numbers():
    frame = pd.DataFrame({"name": ["=HYPERLINK(\"x\")", "+1", "-cmd", "@SUM(A1)", "\tx", "plain"],
                          "amount": [-12.5, 1.0, 2.0, 3.0, 4.0, 5.0]})
    text = export.to_csv(frame)
    back = pd.read_csv(io.StringIO(text))
    assert back["name"].tolist() == ["'=HYPERLINK(\"x\")", "'+1", "'-cmd", "'@SUM(A1)", "'\tx", "plain"]
    assert back["amount"].tolist() == [-12.5, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_file_name_carries_the_filter():
    assert export.filename("studies", Filters.make(study="ST-1")) == "studies_study-ST-1.csv"


def test_deidentified_export_suppresses_small_cells_and_what_would_give_them_away():
    frame = pd.DataFrame({
        "channel": ["A", "B", "C", "D"],
        "leads": [120, 40, 7, 0],
        "randomized": [3, 12, 0, 0],
        "spend": [1000.0, 500.0, 300.0, 50.0],
        "cpl": [8.33, 12.5, 42.86, float("nan")],
    })
    out = export.deidentify(frame, threshold=11)
    S = export.SUPPRESSED
    # leads: 7 is small; with one cell hidden the total would give it back, so the next
    # smallest non-zero cell (40) goes too; zero reveals no one and stays
    assert out["leads"].tolist() == [120, S, S, 0]
    # randomized: 3 is small; 12 is the smallest other non-zero cell
    assert out["randomized"].tolist() == [S, S, 0, 0]
    # cost per lead divides back into the count: hidden wherever a count is
    assert out["cpl"].tolist()[:3] == [S, S, S]
    # spend says nothing about persons and stays
    assert out["spend"].tolist() == [1000.0, 500.0, 300.0, 50.0]
    assert out["channel"].tolist() == ["A", "B", "C", "D"]


def test_deidentified_export_leaves_large_cells_and_honours_the_threshold():
    frame = pd.DataFrame({"site": ["S1", "S2", "S3"], "leads": [25, 19, 30]})
    assert export.deidentify(frame, threshold=11)["leads"].tolist() == [25, 19, 30]
    # at threshold 20, 19 is small and 25 (the smallest other) hides it from the total
    assert export.deidentify(frame, threshold=20)["leads"].tolist() == [export.SUPPRESSED] * 2 + [30]
