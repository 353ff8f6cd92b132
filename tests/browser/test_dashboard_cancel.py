"""The run page's Cancel button in a real browser: confirmed first, then the run's whole
tree is stopped, recorded with who and why, and audited."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from jobdeck.store.records import Run
from tests.browser.conftest import Engine, open_page

ACTOR = "api@127.0.0.1"  # as the JSON API names a caller on loopback

CATALOG = """\
version: 1
project: cancelling
schedules:
  stuck:
    description: Hangs until cancelled, ignoring SIGTERM
    cron: "0 0 1 1 *"
    command:
      - python3
      - -c
      - |
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("holding", flush=True)
        time.sleep(600)
    kill_grace: 1s
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    started = Engine(tmp_path_factory.mktemp("state"), CATALOG).start()
    yield started
    started.stop()


@pytest.fixture
def page(browser: Browser, engine: Engine) -> Iterator[Page]:
    with open_page(browser, engine.url) as opened:
        yield opened


def wait_for(engine: Engine, run_id: int, status: str) -> Run:
    deadline = time.monotonic() + 30
    while True:
        run = engine.app.store.runs.run(run_id)
        assert run is not None
        if run.status == status:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run.status}, not {status}"
        time.sleep(0.05)


def test_cancel_asks_for_confirmation_then_stops_the_run(page: Page, engine: Engine) -> None:
    run = engine.call(lambda: engine.app.driver.run_now("stuck", requested_by="tests"))
    wait_for(engine, run.id, "running")
    page.goto(f"/runs/{run.id}")
    expect(page.locator("#log")).to_contain_text("holding")

    page.get_by_role("link", name="Cancel", exact=True).click()
    dialog = page.locator("#confirm-cancel")
    expect(dialog).to_be_visible()
    # Keeping it running changes nothing.
    dialog.get_by_role("link", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    assert wait_for(engine, run.id, "running").ended_at is None

    page.get_by_role("link", name="Cancel", exact=True).click()
    dialog.get_by_label("Reason").fill("stuck on a lock")
    dialog.get_by_role("button", name="Cancel the run").click()
    expect(page.get_by_role("status")).to_contain_text(f"Run #{run.id}")
    ended = wait_for(engine, run.id, "cancelled")
    assert ended.reason == "cancelled"
    assert ended.detail["cancelled_by"] == ACTOR
    assert ended.detail["cancel_reason"] == "stuck on a lock"
    # The page refreshes itself: the run shows cancelled and the button is gone.
    expect(page.locator("#summary")).to_contain_text("cancelled", timeout=15_000)
    expect(page.get_by_role("link", name="Cancel", exact=True)).to_have_count(0)
    expect(page.locator("#cancelled-by")).to_have_text(f"{ACTOR}: stuck on a lock")

    entry = engine.app.store.audit.audit(limit=1)[0]
    assert (entry.action, entry.target, entry.actor, entry.outcome) == (
        "cancel",
        "schedule stuck",
        ACTOR,
        "ok",
    )
    assert entry.detail == {"run_id": run.id, "reason": "stuck on a lock"}


def test_cancelling_an_ended_run_from_a_stale_page_is_refused(page: Page, engine: Engine) -> None:
    run = engine.call(lambda: engine.app.driver.run_now("stuck", requested_by="tests"))
    wait_for(engine, run.id, "running")
    page.goto(f"/runs/{run.id}?confirm=cancel")
    expect(page.locator("#confirm-cancel")).to_be_visible()
    # The run ends meanwhile (someone else cancelled it).
    engine.call(lambda: engine.app.driver.cancel(run.id, by="someone", why="elsewhere"))
    ended = wait_for(engine, run.id, "cancelled")
    page.locator("#confirm-cancel").get_by_role("button", name="Cancel the run").click()
    expect(page.get_by_role("alert")).to_contain_text("has already ended")
    assert engine.app.store.runs.run(run.id) == ended
