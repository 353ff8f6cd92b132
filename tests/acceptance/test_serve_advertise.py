"""`jobdeck serve --advertise`: a bad URL is refused with a clear error, before anything
starts."""

from __future__ import annotations

import pytest

from tests.acceptance.conftest import Jobdeck


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("ftp://web-1", "--advertise must be an http(s) URL such as http://web-1:8080"),
        ("web-1:8080", "--advertise must be an http(s) URL"),
        ("http://web-1:8080/?a=1", "--advertise takes no query or fragment"),
    ],
)
def test_a_bad_advertised_url_is_refused(jobdeck: Jobdeck, given: str, said: str) -> None:
    refused = jobdeck("serve", "--advertise", given)
    assert refused.code == 1
    assert said in refused.err
    assert "Traceback" not in refused.err
