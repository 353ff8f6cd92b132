"""The dashboard in a real browser: what an operator sees and does."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from jobdeck.store.queue_records import NewMessage
from jobdeck.store.records import Run
from tests.browser.conftest import TOKEN, Engine, open_page

ACTOR = "api@127.0.0.1"  # as the JSON API names a caller on loopback
SCHEDULES = [
    "hello",
    "ranking-aggregate",
    "sitemap-rebuild",
    "nightly-export",
    "stale-cache-sweep",
]


def wait_until_ended(engine: Engine, run_id: int, timeout: float = 30.0) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = engine.app.store.runs.run(run_id)
        assert run is not None
        if not run.active:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
        time.sleep(0.05)


def run_with_retries(engine: Engine, name: str) -> list[Run]:
    """Start a run and wait for it and every retry of it to end; all the attempts."""
    attempts = [wait_until_ended(engine, start_run(engine, name).id)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = engine.app.store.runs.runs(job=name, limit=20)
        retry = next((r for r in runs if r.retry_of == attempts[-1].id), None)
        if retry is not None:
            attempts.append(wait_until_ended(engine, retry.id))
        elif not any(r.active for r in runs):
            return attempts
        time.sleep(0.05)
    raise AssertionError(f"the retries of {name} did not end: {attempts}")


def start_run(engine: Engine, name: str) -> Run:
    return engine.call(lambda: engine.app.driver.run_now(name, requested_by="tests"))


def enqueue(engine: Engine, queue: str, count: int) -> None:
    now_ms = int(engine.app.clock.now().timestamp() * 1000)
    body = "article 1"
    message = NewMessage(
        message_id="",
        body=body,
        attributes={},
        system_attributes={},
        md5_body=hashlib.md5(body.encode()).hexdigest(),
        md5_attributes=None,
        md5_system_attributes=None,
        visible_ms=now_ms,
    )
    with engine.app.store.transaction() as tx:
        tx.queues.insert_messages(
            queue, [replace(message, message_id=str(uuid.uuid4())) for _ in range(count)], now_ms
        )


def test_the_overview_lists_schedules_workers_queues_and_pools(page: Page, engine: Engine) -> None:
    page.goto("/")
    rows = page.locator("#schedules tr.schedule")
    expect(rows).to_have_count(len(SCHEDULES))
    for name in SCHEDULES:
        expect(page.locator(f'#schedules tr[data-name="{name}"] a.name')).to_have_text(name)
    # Next fire in the schedule's own zone, and in UTC beside it.
    hello = page.locator('#schedules tr[data-name="hello"]')
    expect(hello).to_contain_text("JST")
    expect(hello).to_contain_text("UTC")
    expect(page.locator('#schedules tr[data-name="ranking-aggregate"]')).to_contain_text("CET")
    expect(page.locator("#workers")).to_contain_text("feed-indexer")
    expect(page.locator("#queues")).to_contain_text("feed-index")
    expect(page.locator("#queues")).to_contain_text("dead letter after 5 receives")
    # The depth is the store's: three messages sent show up at the next refresh.
    depth = page.locator('#queues tr[data-name="feed-index"] td.num')
    expect(depth.nth(0)).to_have_text("0")
    enqueue(engine, "feed-index", 3)
    expect(depth.nth(0)).to_have_text("3", timeout=20_000)
    expect(depth.nth(1)).to_have_text("0")
    expect(depth.nth(2)).to_have_text("0")
    expect(page.locator("#pools")).to_contain_text("1 GiB")


def test_the_overview_refreshes_itself_without_reloading(page: Page, engine: Engine) -> None:
    page.goto("/")
    page.evaluate("window.sameDocument = true")
    row = page.locator('#schedules tr[data-name="hello"]')
    expect(row).to_contain_text("active")
    control = engine.app.control("bob@laptop", "cli")
    engine.call(lambda: control.suspend("hello", "checking the refresh"))
    try:
        expect(row).to_contain_text("checking the refresh", timeout=20_000)
    finally:
        engine.call(lambda: control.resume("hello"))
    expect(row).to_contain_text("active", timeout=20_000)
    assert page.evaluate("window.sameDocument") is True


def test_run_now_asks_for_confirmation_and_the_run_shows_up(page: Page, engine: Engine) -> None:
    page.goto("/")
    page.locator('#schedules tr[data-name="hello"] a.name').click()
    expect(page).to_have_url(re.compile(r"/schedules/hello$"))
    expect(page.locator("h1")).to_have_text("hello")

    page.get_by_role("link", name="Run now").click()
    dialog = page.locator("#confirm-run")
    expect(dialog).to_be_visible()
    # Cancelling starts nothing.
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert engine.app.store.runs.runs(job="hello", trigger="manual") == []

    page.get_by_role("link", name="Run now").click()
    dialog.get_by_role("button", name="Start the run").click()
    notice = page.get_by_role("status")
    expect(notice).to_contain_text("started")
    run_id = int(re.sub(r"\D", "", notice.locator("a").inner_text()))
    run = engine.app.store.runs.run(run_id)
    assert run is not None
    assert (run.job, run.trigger, run.requested_by) == ("hello", "manual", ACTOR)

    # The history lists it; the page refreshes itself until the run has succeeded.
    row = page.locator("#history tbody tr", has=page.locator(f'a[href="runs/{run_id}"]'))
    expect(row).to_be_visible()
    expect(row).to_contain_text("succeeded", timeout=30_000)
    drawn = [r for r in engine.app.store.runs.runs(job="hello") if r.started_at is not None]
    expect(page.locator("#history svg.chart rect.bar")).to_have_count(len(drawn))

    entry = engine.app.store.audit.audit(limit=1)[0]
    assert (entry.action, entry.target, entry.via, entry.outcome) == (
        "run",
        "schedule hello",
        "api",
        "ok",
    )
    assert entry.detail["run_id"] == run_id

    # The run's page shows the log.
    row.locator(f'a[href="runs/{run_id}"]').click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))
    expect(page.locator("#log")).to_have_text("hi\n")
    expect(page.locator("#summary")).to_contain_text("succeeded")


def test_a_run_now_skipped_by_the_overlap_policy_says_so(page: Page, engine: Engine) -> None:
    running = start_run(engine, "nightly-export")
    page.goto("/schedules/nightly-export?confirm=run")
    page.locator("#confirm-run").get_by_role("button", name="Start the run").click()
    notice = page.get_by_role("status")
    expect(notice).to_contain_text("was skipped: overlap (the overlap policy is skip)")
    assert wait_until_ended(engine, running.id).status == "succeeded"


def test_suspending_asks_for_a_reason_shows_the_suspension_and_resumes(
    page: Page, engine: Engine
) -> None:
    page.goto("/schedules/sitemap-rebuild")
    page.get_by_role("link", name="Suspend").click()
    dialog = page.locator("#confirm-suspend")
    expect(dialog).to_be_visible()
    reason = dialog.get_by_label("Reason")
    expect(reason).to_be_focused()
    # No reason, no suspension: the browser holds the form back.
    dialog.get_by_role("button", name="Suspend").click()
    expect(dialog).to_be_visible()
    assert engine.app.store.suspensions.suspensions(engine.app.clock.now()) == []

    reason.fill("search engine outage, see incident 42")
    dialog.get_by_label("Until").fill("2h")
    dialog.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("status")).to_contain_text("sitemap-rebuild is suspended")
    expect(page.locator("#suspension")).to_contain_text("search engine outage, see incident 42")
    expect(page.locator("#suspension")).to_contain_text(ACTOR)
    [held] = engine.app.store.suspensions.suspensions(engine.app.clock.now())
    assert (held.kind, held.name, held.created_by) == ("schedule", "sitemap-rebuild", ACTOR)
    assert held.until is not None

    # A suspended schedule cannot be run from here; the overview shows why it is held.
    expect(page.locator("#actions")).not_to_contain_text("Suspend")
    page.goto("/")
    row = page.locator('#schedules tr[data-name="sitemap-rebuild"]')
    expect(row).to_contain_text("suspended")
    expect(row).to_contain_text("search engine outage")

    page.locator('#schedules tr[data-name="sitemap-rebuild"] a.name').click()
    page.get_by_role("link", name="Resume").click()
    page.locator("#confirm-resume").get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("sitemap-rebuild is resumed")
    expect(page.locator("#suspension")).to_have_count(0)
    assert engine.app.store.suspensions.suspensions(engine.app.clock.now()) == []
    actions = [(e.action, e.via) for e in engine.app.store.audit.audit(limit=2)]
    assert actions == [("resume", "api"), ("suspend", "api")]

    # The audit page lists both, newest first.
    page.get_by_role("link", name="Audit").click()
    rows = page.locator("#audit tbody tr")
    expect(rows.nth(0)).to_contain_text("resume")
    expect(rows.nth(1)).to_contain_text("search engine outage")


def test_a_bad_until_is_refused_with_a_message(page: Page, engine: Engine) -> None:
    page.goto("/schedules/hello?confirm=suspend")
    dialog = page.locator("#confirm-suspend")
    dialog.get_by_label("Reason").fill("testing")
    dialog.get_by_label("Until").fill("tomorrowish")
    dialog.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("alert")).to_contain_text("give a duration such as 2h")
    assert engine.app.store.suspensions.suspensions(engine.app.clock.now()) == []


def test_a_form_post_from_another_site_is_refused(engine: Engine) -> None:
    before = engine.app.store.runs.runs(job="sitemap-rebuild")
    refused = httpx.post(
        f"{engine.url}/schedules/sitemap-rebuild/run", headers={"Origin": "http://elsewhere.test"}
    )
    assert refused.status_code == 403
    assert engine.app.store.runs.runs(job="sitemap-rebuild") == before


def test_the_run_page_follows_the_log_while_it_runs(page: Page, engine: Engine) -> None:
    run = start_run(engine, "ranking-aggregate")
    page.goto(f"/runs/{run.id}")
    log = page.locator("#log")
    expect(page.locator("#following")).to_be_visible()
    expect(log).to_contain_text("step 6", timeout=30_000)
    assert log.inner_text().count("step") == 6
    expect(page.locator("#summary")).to_contain_text("succeeded", timeout=15_000)
    expect(page.locator("#following")).to_have_count(0)
    expect(page.locator("ol.timeline")).to_contain_text("started")


def test_the_revisions_page_lists_the_applied_catalog(page: Page) -> None:
    page.goto("/revisions")
    expect(page.locator("#revisions tbody tr")).to_have_count(1)
    expect(page.locator("#revisions")).to_contain_text("alice@laptop")
    page.get_by_role("link", name="1", exact=True).click()
    expect(page.locator("pre")).to_contain_text("project: newsroom")


def test_screenshots_of_the_main_pages(page: Page, engine: Engine, screenshot_dir: Path) -> None:
    for name in ["hello", "hello", "hello", "hello", "hello"]:
        wait_until_ended(engine, start_run(engine, name).id)
    first, failed = run_with_retries(engine, "stale-cache-sweep")
    assert (failed.status, failed.exit_code, failed.attempt) == ("failed", 3, 2)

    control = engine.app.control("alice@laptop", "cli")
    engine.call(lambda: control.suspend("stale-cache-sweep", "fails on stale caches, see #418"))

    page.goto("/")
    failures = page.locator("#failures")
    expect(failures).to_contain_text("stale-cache-sweep")
    sweep = page.locator('#schedules tr[data-name="stale-cache-sweep"]')
    expect(sweep).to_contain_text("fails on stale caches, see #418")
    page.screenshot(path=str(screenshot_dir / "dashboard-overview.png"), full_page=True)
    engine.call(lambda: control.resume("stale-cache-sweep"))

    page.goto("/schedules/hello")
    started = [run for run in engine.app.store.runs.runs(job="hello") if run.started_at]
    expect(page.locator("#history svg.chart rect.bar")).to_have_count(len(started))
    page.screenshot(path=str(screenshot_dir / "dashboard-schedule.png"), full_page=True)
    page.get_by_role("link", name="Suspend").click()
    page.locator("#confirm-suspend").get_by_label("Reason").fill("upstream feed is late, see #412")
    page.screenshot(path=str(screenshot_dir / "dashboard-suspend.png"))
    page.locator("#confirm-suspend").get_by_role("link", name="Cancel").click()

    page.goto(f"/runs/{first.id}")
    # Every attempt of the fire is listed and linked; the last one is the failure.
    attempts = page.locator("ol.attempts li")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("attempt 1")
    attempts.nth(1).get_by_role("link", name=f"#{failed.id}").click()
    expect(page).to_have_url(re.compile(rf"/runs/{failed.id}$"))
    expect(page.locator("ol.attempts li.current")).to_contain_text("attempt 2")
    expect(page.locator("#summary")).to_contain_text("retry")
    expect(page.locator("#log")).to_contain_text("cache is stale")
    page.screenshot(path=str(screenshot_dir / "dashboard-run.png"), full_page=True)
    for name in ("overview", "schedule", "suspend", "run"):
        assert (screenshot_dir / f"dashboard-{name}.png").stat().st_size > 10_000


def test_behind_the_login_the_pages_refresh_and_act_with_the_session(
    browser: Browser, guarded_engine: Engine
) -> None:
    with open_page(browser, guarded_engine.url) as page:
        page.goto("/schedules/hello")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/schedules/hello$"))

        page.get_by_role("link", name="Run now").click()
        page.locator("#confirm-run").get_by_role("button", name="Start the run").click()
        notice = page.get_by_role("status")
        expect(notice).to_contain_text("started")
        run_id = int(re.sub(r"\D", "", notice.locator("a").inner_text()))
        # The refresh fetches carry the session: the row turns to succeeded in place.
        row = page.locator("#history tbody tr", has=page.locator(f'a[href="runs/{run_id}"]'))
        expect(row).to_contain_text("succeeded", timeout=30_000)
        [entry] = guarded_engine.app.store.audit.audit(limit=1)
        assert (entry.action, entry.via, entry.detail["run_id"]) == ("run", "api", run_id)

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login"))
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login\?next="))
