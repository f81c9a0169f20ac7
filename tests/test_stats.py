"""The statistics helper: every outcome has a correct number and sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis import stats


def test_summary_uses_the_t_quantile_not_two_standard_errors():
    values = [0.90, 0.92, 0.97]
    s = stats.summary(values)
    half = scipy_stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert s.n == 3 and s.dropped == 0
    assert s.low == pytest.approx(np.mean(values) - half)
    assert s.high == pytest.approx(np.mean(values) + half)
    # 4.30 standard errors at n = 3, far wider than "2 SE".
    assert (s.high - s.low) / 2 > 4 * np.std(values, ddof=1) / math.sqrt(3)


def test_summary_drops_and_counts_diverged_runs():
    s = stats.summary([0.5, float("nan"), 0.7, float("inf")])
    assert (s.n, s.dropped) == (2, 2)
    assert s.mean == pytest.approx(0.6)
    assert "2 runs diverged" in s.text()


def test_summary_of_one_run_has_no_interval_and_says_so():
    s = stats.summary([0.8])
    assert s.n == 1 and math.isnan(s.std) and math.isnan(s.low)
    assert s.text(digits=2) == "0.80 (n=1)"
    assert "single run" in s.interval_text()


def test_summary_with_no_finite_runs():
    s = stats.summary([float("nan")] * 3)
    assert s.n == 0 and s.dropped == 3
    assert s.text() == "no finite runs (3 runs diverged)"


def test_paired_comparison_finds_a_consistent_small_difference():
    # The seed-to-seed spread (0.05) dwarfs the difference (0.01), but the
    # difference is the same on every seed: pairing sees it, sd1 + sd2 does not.
    base = np.array([0.80, 0.85, 0.90, 0.95, 0.75])
    c = stats.compare(base + 0.01, base, names=("Adam", "AdaGrad"))
    assert c.outcome == "a_better" and c.better_name == "Adam"
    assert (c.wins, c.losses, c.ties) == (5, 0, 0)
    assert c.k_of_n() == "5 of 5 seeds"
    sentence = c.sentence()
    assert sentence.startswith("Adam's test accuracy is higher than AdaGrad's by 1.0 points")
    assert "paired over 5 seeds" in sentence and "Adam better on 5 of 5" in sentence
    unpaired = stats.compare(base + 0.01, base, names=("Adam", "AdaGrad"), paired=False)
    assert unpaired.outcome == "unclear"


def test_reversed_result_names_the_other_method():
    base = np.array([0.80, 0.85, 0.90])
    c = stats.compare(base - 0.02, base, names=("Adam", "AdaGrad"))
    assert c.outcome == "b_better" and c.better_name == "AdaGrad"
    assert c.sentence().startswith("Adam's test accuracy is lower than AdaGrad's by 2.0 points "
                                   "(95% CI 2.0 to 2.0 points")   # the interval in the stated direction
    assert "Adam better on 0 of 3" in c.sentence()


def test_lower_is_better_turns_the_verdict_around():
    base = np.array([0.30, 0.35, 0.40])
    c = stats.compare(base - 0.05, base, names=("L2", "none"), higher_is_better=False)
    assert c.outcome == "a_better" and c.wins == 3


def test_tie():
    c = stats.compare([0.9, 0.8, 0.7], [0.9, 0.8, 0.7], names=("x", "y"))
    assert c.outcome == "tie" and c.better is None
    assert c.sentence() == "x and y reach the same test accuracy on every one of 3 seeds"
    near = stats.compare([0.9, 0.8], [0.9005, 0.8], names=("x", "y"), tolerance=0.001)
    assert near.outcome == "tie"


def test_unclear_difference_says_the_interval_includes_zero():
    c = stats.compare([0.90, 0.80, 0.85], [0.85, 0.86, 0.84], names=("x", "y"))
    assert c.outcome == "unclear"
    assert c.low < 0 < c.high
    assert "no clear difference" in c.sentence() and "includes zero" in c.sentence()
    assert "the mean difference x − y is 0.0 points (95% CI −13.8 to 13.8 points" in c.sentence()


def test_nan_pairs_are_dropped_and_reported():
    c = stats.compare([0.9, float("nan"), 0.91, 0.92], [0.8, 0.8, 0.81, 0.82], names=("x", "y"))
    assert (c.n, c.dropped) == (3, 1)
    assert c.outcome == "a_better"
    assert "1 run diverged and left out" in c.sentence()


def test_all_nan_is_empty_not_a_verdict():
    c = stats.compare([float("nan")] * 2, [0.5, 0.6], names=("x", "y"))
    assert c.outcome == "empty" and c.better is None
    assert c.sentence().startswith("no comparison of x and y is possible")


def test_single_seed_is_not_a_verdict():
    c = stats.compare([0.9], [0.8], names=("x", "y"))
    assert c.outcome == "single" and c.better is None
    assert "one seed allows no interval" in c.sentence()
    same = stats.compare([0.9], [0.9], names=("x", "y"))
    assert same.outcome == "tie"


def test_paired_needs_equal_lengths():
    with pytest.raises(ValueError, match="paired comparison needs as many"):
        stats.compare([1, 2, 3], [1, 2], names=("x", "y"))


def test_sentences_are_never_empty():
    cases = [([0.9, 0.8], [0.9, 0.8]), ([0.9], [0.1]), ([float("nan")], [1.0]),
             ([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]), ([0.5, 0.6, 0.7], [0.1, 0.2, 0.3])]
    for a, b in cases:
        for paired in (True, False):
            assert stats.compare(a, b, names=("x", "y"), paired=paired).sentence().strip()
