"""One unit convention: what a manifest declares is what pages and messages show."""

from __future__ import annotations

import pytest

from saas.ged.services.quota import human_size
from saas.tenancy.manifests import parse_size
from saas.units import NBSP, format_size


@pytest.mark.parametrize("declared, shown", [
    ("10 Mo", "10 Mo"), ("500 Mo", "500 Mo"), ("2 To", "2 To"), ("1,5 Go", "1,5 Go"),
    ("20 ko", "20 ko"), ("10 Mio", "10,5 Mo"), ("20 GiB", "21,5 Go"), ("999", "999 octets"),
])
def test_a_size_declared_in_a_manifest_is_shown_in_the_same_decimal_units(declared, shown):
    assert format_size(parse_size(declared)) == shown.replace(" ", NBSP)


def test_the_quota_meter_and_messages_use_the_one_formatting_function():
    # The GED's quota meter, its errors and the platform's 413 page all go through format_size.
    assert human_size(10 * 10**6) == f"10{NBSP}Mo"
    assert human_size(None) == "—"


@pytest.mark.parametrize("n, shown", [
    (0, "0 octet"), (1, "1 octet"), (2, "2 octets"), (1000, "1 ko"), (1_048_576, "1,05 Mo"),
    (999_999, "1 Mo"), (123_456_789, "123 Mo"), (1_234_000_000_000, "1,23 To"),
])
def test_french_formatting_three_significant_digits_and_a_non_breaking_space(n, shown):
    assert format_size(n) == shown.replace(" ", NBSP)
