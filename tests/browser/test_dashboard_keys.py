"""The dashboard shows a concurrency key's holders and waiters, and a waiting run's place
in line, in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Engine, open_page
from tests.browser.test_dashboard import start_run, wait_until_ended

# Holds until the test creates the gate file.
HOLD = "import pathlib, time\\nwhile not pathlib.Path('GATE').exists(): time.sleep(0.05)"
CATALOG = """\
version: 1
project: keys

schedules:
  reindex:
    cron: "17 4 * * *"
    command: ["python3", "-c", "HOLD"]
    concurrency: {key: db-maintenance}
  report:
    cron: "17 4 * * *"
    command: ["python3", "-c", "print('report')"]
    concurrency: {key: db-maintenance}
"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate") / "go"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, gate: Path) -> Iterator[Engine]:
    started = Engine(
        tmp_path_factory.mktemp("state"), CATALOG.replace("HOLD", HOLD).replace("GATE", str(gate))
    ).start()
    yield started
    gate.touch()
    started.stop()


@pytest.fixture
def page(browser: Browser, engine: Engine) -> Iterator[Page]:
    with open_page(browser, engine.url) as opened:
        yield opened


def test_the_overview_and_the_run_page_show_holders_and_waiters(
    page: Page, engine: Engine, gate: Path
) -> None:
    holder = start_run(engine, "reindex")
    waiter = start_run(engine, "report")
    page.goto("/")
    row = page.locator('#concurrency-keys tr[data-key="db-maintenance"]')
    expect(row.locator(".holders")).to_contain_text(f"#{holder.id} reindex")
    expect(row.locator(".waiters")).to_contain_text(f"#{waiter.id} report")
    row.locator(".waiters a").click()
    expect(page).to_have_url(re.compile(rf"/runs/{waiter.id}$"))
    expect(page.locator("#key-waiting")).to_contain_text("number 1 in line (limit 1)")
    expect(page.locator("#key-holders")).to_contain_text(f"#{holder.id} schedule reindex")
    gate.touch()
    assert wait_until_ended(engine, waiter.id).status == "succeeded"
    page.goto("/")
    expect(row.locator(".holders")).to_contain_text("free")
    expect(row.locator(".waiters")).to_contain_text("none")
