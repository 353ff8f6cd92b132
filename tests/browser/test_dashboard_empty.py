"""The dashboard before anything is applied, and its answers to unknown names."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser.conftest import Engine


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    started = Engine(tmp_path_factory.mktemp("state"), None).start()
    try:
        with httpx.Client(base_url=started.url) as opened:
            yield opened
    finally:
        started.stop()


def test_the_overview_says_how_to_apply_a_first_revision(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Nothing is applied yet" in page.text
    assert "jobdeck apply" in page.text


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/schedules/nightly", "no schedule named &#39;nightly&#39;"),
        ("/runs/41", "There is no run 41."),
        ("/runs/forty-one", "There is no run forty-one."),
        ("/revisions/3", "There is no revision 3."),
    ],
)
def test_unknown_names_are_404_pages_that_say_what_is_missing(
    client: httpx.Client, path: str, says: str
) -> None:
    page = client.get(path)
    assert page.status_code == 404
    assert says in page.text
    assert "Back to the overview" in page.text


def test_the_log_follower_answers_json_and_the_assets_are_served(client: httpx.Client) -> None:
    missing = client.get("/runs/41/log?offset=0")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    script = client.get("/assets/dashboard.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert client.get("/assets/dashboard.css").status_code == 200
    assert client.get("/favicon.ico").headers["content-type"] == "image/svg+xml"
