"""SLACK_API_URL is parsed as a URL: a loopback-looking prefix does not make a host loopback."""

from __future__ import annotations

import pytest

from jobdeck.slack import SlackConfigError, SlackSettings

BOT = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost@evil.example/",
        "http://127.0.0.1.evil.example/api/",
        "http://localhost.evil.example/",
        "http://127.0.0.1:80@evil.example/",
        "http://evil.example/http://127.0.0.1",
        "ftp://127.0.0.1/",
        "http:///api",
    ],
)
def test_a_plain_http_url_off_the_host_is_refused(url: str) -> None:
    with pytest.raises(SlackConfigError, match="SLACK_API_URL"):
        SlackSettings.from_env({**BOT, "SLACK_API_URL": url})


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9999/api/", "http://localhost:8000/api", "http://[::1]:80/", "https://x.y/"],
)
def test_loopback_http_and_any_https_are_accepted(url: str) -> None:
    settings = SlackSettings.from_env({**BOT, "SLACK_API_URL": url})
    assert settings is not None
    assert settings.api_url == url.rstrip("/") + "/"
