"""DRF rate strings read by floodwall: the whole unit counts, not its first letter.

DRF itself reads "100/month" as 100 per minute (it looks at "m" only);
floodwall refuses it with the list of units, and refuses non-ASCII digits,
while the DRF forms people write ("100/min", "5/hour") keep their meaning.
"""

from __future__ import annotations

import django_setup
import pytest

django_setup.configure()

from floodwall import Rate, RateParseError  # noqa: E402
from floodwall.integrations.drf import parse_drf_rate  # noqa: E402


@pytest.mark.parametrize("text", ["100/month", "100/mo", "5/mn", "5/dozen", "5/hx", "10/sx"])
def test_unknown_unit_is_refused_not_read_by_its_first_letter(text: str) -> None:
    with pytest.raises(RateParseError, match="unknown unit"):
        parse_drf_rate(text)


def test_non_ascii_digits_are_refused() -> None:
    with pytest.raises(RateParseError, match="ASCII digits"):
        parse_drf_rate("\u0661\u0660/s")


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/min", Rate(100, 60)),
        ("100/m", Rate(100, 60)),
        ("5/hour", Rate(5, 3600)),
        ("5/HOURS", Rate(5, 3600)),
        ("10/s", Rate(10, 1)),
        ("10/sec", Rate(10, 1)),
        ("1000/day", Rate(1000, 86_400)),
    ],
)
def test_drf_forms_keep_their_meaning(text: str, rate: Rate) -> None:
    assert parse_drf_rate(text) == rate
