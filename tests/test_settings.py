"""Every number the environment sets is range-checked in Settings.from_environment itself: these unit tests call it
directly, so a broken check fails here in milliseconds (not through a doit run that would start a real stage)."""

from __future__ import annotations

import pytest

from mmulab.core.errors import EnvError
from mmulab.core.settings import Settings

# variable, the largest value refused, the smallest accepted, what the one line says it accepts
RANGES = [
    ("MMULAB_JOBS", "0", "1", "a whole number >= 1"),
    ("MMULAB_JOBS", "-3", "64", "a whole number >= 1"),
    ("SOURCE_DATE_EPOCH", "-1", "0", "seconds since 1970 (a whole number >= 0)"),
    ("MMULAB_FETCH_RETRIES", "-1", "0", "a whole number >= 0"),
    ("MMULAB_FETCH_BACKOFF", "-0.5", "0", "seconds >= 0"),
]


@pytest.mark.parametrize(("variable", "refused", "accepted", "accepts"), RANGES)
def test_a_number_below_its_range_is_refused_naming_the_variable_and_the_range(
    variable: str, refused: str, accepted: str, accepts: str
) -> None:
    with pytest.raises(EnvError) as raised:
        Settings.from_environment({variable: refused})
    assert str(raised.value) == f"{variable}={refused!r}: out of range; it accepts {accepts}"
    assert Settings.from_environment({variable: accepted}) is not None


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("MMULAB_JOBS", "abc", "not a number"),
        ("MMULAB_JOBS", "1.5", "not a number"),
        ("MMULAB_FETCH_BACKOFF", "nan", "not a finite number"),
        ("MMULAB_FETCH_BACKOFF", "inf", "not a finite number"),
    ],
)
def test_a_value_that_is_not_a_number_of_the_kind_is_refused(variable: str, value: str, problem: str) -> None:
    with pytest.raises(EnvError, match=f"^{variable}={value!r}: {problem}; it accepts "):
        Settings.from_environment({variable: value})


def test_the_accepted_numbers_are_the_settings_values() -> None:
    settings = Settings.from_environment(
        {"MMULAB_JOBS": "3", "SOURCE_DATE_EPOCH": "0", "MMULAB_FETCH_RETRIES": "0", "MMULAB_FETCH_BACKOFF": "0.25"}
    )
    numbers = (settings.jobs, settings.source_date_epoch, settings.fetch_retries, settings.fetch_backoff)
    assert numbers == (3, 0, 0, 0.25)
