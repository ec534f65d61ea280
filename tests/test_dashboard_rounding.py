"""Dashboard figures round the same whichever order their sums were added in."""

from cclens.server.dashboard_pages import _round


def test_a_half_cent_tie_rounds_the_same_from_either_side_of_float_noise():
    below, above = 26.624999999999996, 26.625000000000004  # 26.625 summed in two orders
    assert round(below, 2) != round(above, 2)                 # what plain rounding did
    assert _round(below, 2) == _round(above, 2) == 26.62
    assert _round(0.1 + 0.2) == 0.3 and _round(7) == 7 and _round(None) is None
