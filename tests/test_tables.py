"""The shared table helpers."""

import pytest

from analysis import tables


def test_mean_std_uses_the_sample_standard_deviation():
    assert tables.mean_std([1.0, 3.0], digits=2) == "2.00 ± 1.41 (n=2)"
    assert tables.mean_std([0.9, 0.92], digits=1, percent=True) == "91.0% ± 1.4% (n=2)"
    assert tables.mean_std([0.5, 0.7], count=False) == "0.600 ± 0.141"


def test_mean_std_of_one_run_has_no_spread():
    assert tables.mean_std([0.25]) == "0.250 (n=1)"


def test_markdown_table_with_a_note():
    text = tables.markdown([("a", "1")], ("name", "value"), note="Data: X").data
    assert text.splitlines()[0].startswith("| name") and text.endswith("*Data: X*")


@pytest.mark.parametrize("name", ["environment", "datasets"])
def test_front_page_tables_render(name):
    text = getattr(tables, name)().data
    assert text.count("\n") >= 3 and "|" in text
