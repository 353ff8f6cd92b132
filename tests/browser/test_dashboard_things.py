"""The dashboard's pages of a worker, a queue, a command and a pool, the run list and
its filters, and HTML 404s for unknown names, in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Engine, open_page
from tests.browser.test_dashboard import enqueue, start_run, wait_until_ended

ACTOR = "api@127.0.0.1"

CATALOG = """\
version: 1
project: things

pools:
  batch: {memory: 1GiB, max_concurrency: 4, priority: low}
  tools: {memory: 256MiB, priority: high}

queues:
  feed-index: {visibility_timeout: 1s, max_receive_count: 1}

schedules:
  hello:
    cron: "17 4 * * *"
    command: ["python3", "-c", "print('hi')"]
    pool: batch
    overlap: allow
  broken:
    cron: "17 4 * * *"
    command: ["python3", "-c", "import sys; sys.exit(2)"]
    overlap: allow

workers:
  feed-indexer:
    description: Index articles from the feed queue
    command: ["python3", "-c", "import time; time.sleep(3600)"]
    queue: feed-index
    replicas: 1
    pool: batch

commands:
  breaking-push:
    description: Push a breaking-news alert
    command: ["python3", "-c", "import sys; print('pushed', sys.argv[1:])", "{title}", "{audience}"]
    pool: tools
    params:
      title: {type: string, required: true, description: The headline}
      audience: {type: choice, choices: [all, subscribers], default: all}
    allow: {channels: ["#newsroom"], users: [U123]}
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


def test_the_overview_lists_commands_and_counts_declared_pools(page: Page) -> None:
    page.goto("/")
    expect(page.locator(".subtitle")).to_contain_text("1 commands")
    expect(page.locator(".subtitle")).to_contain_text("2 pools")  # not the default pool
    row = page.locator('#commands tr[data-name="breaking-push"]')
    expect(row).to_contain_text("title, audience")
    expect(row).to_contain_text("channels #newsroom; users U123")
    row.locator("a.name").click()
    expect(page).to_have_url(re.compile(r"/commands/breaking-push$"))


def test_a_command_page_runs_it_after_confirmation_and_audits_it(
    page: Page, engine: Engine
) -> None:
    page.goto("/commands/breaking-push")
    expect(page.locator("#params")).to_contain_text("The headline")
    expect(page.locator("#access")).to_contain_text("channels #newsroom")
    dialog = page.locator("#confirm-run")
    expect(dialog).to_be_hidden()
    page.get_by_role("link", name="Run…").click()
    expect(dialog).to_be_visible()
    # A required param left out is refused with the reason, the form still open.
    dialog.get_by_role("button", name="Start the run").click()
    expect(page.locator(".notice.bad")).to_contain_text("title")
    expect(page.locator("#confirm-run")).to_be_visible()
    page.locator('#confirm-run input[name="param-title"]').fill("Big news")
    page.locator('#confirm-run select[name="param-audience"]').select_option("subscribers")
    page.locator("#confirm-run").get_by_role("button", name="Start the run").click()
    expect(page.locator(".notice.good")).to_contain_text("started")
    run_id = int(page.locator(".notice.good a").inner_text().lstrip("#"))
    run = wait_until_ended(engine, run_id)
    assert (run.kind, run.status, run.requested_by) == ("command", "succeeded", ACTOR)
    assert run.params == {"title": "Big news", "audience": "subscribers"}
    entry = next(e for e in engine.app.store.audit.audit(20) if e.target == "command breaking-push")
    assert (entry.actor, entry.via, entry.outcome) == (ACTOR, "api", "ok")
    page.reload()
    expect(page.locator("#invocations")).to_contain_text(f"#{run_id}")


def test_a_queue_page_shows_depth_over_time_and_redrives_after_confirmation(
    page: Page, engine: Engine
) -> None:
    enqueue(engine, "feed-index", 2)
    dead_letter(engine, "feed-index", 2)
    engine.app.sample_queues()
    enqueue(engine, "feed-index", 3)
    engine.app.sample_queues()
    page.goto("/queues/feed-index")
    expect(page.locator("#depth")).to_contain_text("2")
    expect(page.locator("#history svg.chart polyline.visible")).to_have_count(1)
    expect(page.locator("#settings, .card").first).to_be_visible()
    page.get_by_role("link", name="Redrive dead letters").click()
    dialog = page.locator("#confirm-redrive")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Redrive").click()
    expect(page.locator(".notice.good")).to_contain_text("Moved 2 message(s) back to feed-index")
    entry = engine.app.store.audit.audit(1)[0]
    assert (entry.action, entry.target, entry.actor, entry.via) == (
        "queue redrive",
        "queue feed-index",
        ACTOR,
        "api",
    )
    assert entry.detail["moved"] == {"feed-index": 2}
    expect(page.locator("#redrives")).to_contain_text("moved 2")


def dead_letter(engine: Engine, queue: str, count: int) -> None:
    """Move ``count`` messages into the queue's dead-letter queue, as too many receives do."""
    now_ms = int(engine.app.clock.now().timestamp() * 1000)
    with engine.app.store.transaction() as tx:
        found = tx.queues.receivable(queue, now_ms=now_ms, sent_after_ms=0, limit=count, fifo=False)
        moved = tx.queues.move_messages(
            [m.id for m in found],
            to_queue=f"{queue}-dlq",
            now_ms=now_ms,
            dead_lettered_from=queue,
        )
    assert moved == count


def test_a_worker_page_shows_replicas_and_exits(page: Page, engine: Engine) -> None:
    page.goto("/")
    page.locator("#workers a.name", has_text="feed-indexer").click()
    expect(page).to_have_url(re.compile(r"/workers/feed-indexer$"))
    expect(page.locator("#replicas")).to_contain_text("desired")
    expect(page.locator("#replicas table.runs tbody tr")).to_have_count(1, timeout=20_000)
    expect(page.locator("#replicas")).to_contain_text("running")
    expect(page.locator("#exits")).to_contain_text("No runs yet.")


def test_a_pool_page_lists_its_members_and_memory(page: Page) -> None:
    page.goto("/")
    page.locator("#pools a.name", has_text="batch").click()
    expect(page).to_have_url(re.compile(r"/pools/batch$"))
    members = page.locator("#members")
    expect(members).to_contain_text("hello")
    expect(members).to_contain_text("feed-indexer")
    expect(members).not_to_contain_text("breaking-push")
    expect(page.locator("#memory")).to_contain_text("1 GiB")


def test_the_run_list_filters_by_job_status_trigger_and_time(page: Page, engine: Engine) -> None:
    ok = wait_until_ended(engine, start_run(engine, "hello").id)
    bad = wait_until_ended(engine, start_run(engine, "broken").id)
    page.goto("/runs")
    expect(page.locator("#run-list")).to_contain_text(f"#{bad.id}")
    page.locator('select[name="status"]').select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("#run-list")).to_contain_text(f"#{bad.id}")
    expect(page.locator("#run-list")).not_to_contain_text(f"#{ok.id} ")
    page.goto("/runs?job=hello&trigger=manual&within=1h")
    expect(page.locator("#run-list")).to_contain_text(f"#{ok.id}")
    expect(page.locator("#run-list")).not_to_contain_text("broken")
    page.goto("/runs?trigger=schedule&job=hello")
    expect(page.locator("#run-list")).to_contain_text("No runs yet.")


def test_unknown_names_get_an_html_404(engine: Engine) -> None:
    for path in (
        "/workers/nosuch",
        "/queues/nosuch",
        "/commands/nosuch",
        "/pools/nosuch",
        "/schedules/nosuch",
    ):
        response = httpx.get(engine.url + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "Not found" in response.text


def test_no_page_has_inline_scripts_or_style_attributes(engine: Engine) -> None:
    """A strict Content-Security-Policy allows neither."""
    for path in (
        "/",
        "/runs",
        "/workers/feed-indexer",
        "/queues/feed-index",
        "/commands/breaking-push",
        "/pools/batch",
        "/schedules/hello",
    ):
        text = httpx.get(engine.url + path).text
        assert "style=" not in text, path
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, path
