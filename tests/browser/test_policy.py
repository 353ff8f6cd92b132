"""The dashboard works under its Content-Security-Policy: no inline script or style, the
pool meters drawn by the shipped script, and no policy violation on any page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Engine


def test_the_pages_keep_working_under_the_policy(page: Page, engine: Engine) -> None:
    answer = page.goto("/")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    expect(page.locator("#pools")).to_contain_text("1 GiB")
    for bar in page.locator("[data-share]").all():
        share = float(bar.get_attribute("data-share") or "0")
        width = bar.evaluate("element => element.style.width")
        assert width == f"{max(0.0, min(100.0, share)):g}%"
    for path in ("audit", "revisions", "schedules/hello", "login"):
        page.goto(path)
    # The page fixture fails the test on any console error, CSP violations included.
