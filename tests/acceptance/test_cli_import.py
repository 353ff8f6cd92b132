"""`jobdeck import crontab` from the command line: YAML on stdout that validates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.acceptance.conftest import Jobdeck

CRONTABS = Path(__file__).parents[1] / "data" / "crontabs"


@pytest.mark.parametrize(
    ("name", "options"),
    [("app-server.crontab", ()), ("messy.crontab", ()), ("etc-crontab", ("--system",))],
)
def test_imported_crontab_validates(
    jobdeck: Jobdeck, workdir: Path, name: str, options: tuple[str, ...]
) -> None:
    shutil.copy(CRONTABS / name, workdir / name)
    converted = jobdeck("import", "crontab", name, *options, "--project", "legacy")
    assert converted.code == 0, converted.err
    assert converted.out.startswith("#") or converted.out.startswith("version: 1")
    (workdir / "imported.yaml").write_text(converted.out)
    checked = jobdeck("-f", "imported.yaml", "validate")
    assert checked.code == 0, checked.err
    assert checked.out.startswith("ok: ")


def test_reboot_entries_are_reported_on_stderr(jobdeck: Jobdeck, workdir: Path) -> None:
    (workdir / "mine.crontab").write_text(
        "MAILTO=ops@example.com\n@reboot /opt/app/bin/warm-cache\n*/5 * * * * /opt/app/bin/poll\n"
    )
    converted = jobdeck("import", "crontab", "mine.crontab")
    assert converted.code == 0
    assert "@reboot" in converted.err
    assert "/opt/app/bin/poll" in converted.out
    assert "ops@example.com" in converted.out


def test_an_unreadable_file_exits_2_and_prints_nothing(jobdeck: Jobdeck) -> None:
    converted = jobdeck("import", "crontab", "no-such.crontab")
    assert converted.code == 2
    assert converted.out == ""
    assert "cannot read no-such.crontab" in converted.err
