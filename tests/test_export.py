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
