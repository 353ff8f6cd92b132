"""``jobdeck import crontab``: real crontabs in, a catalog that loads out."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck.catalog.crontab import CrontabImport, import_crontab, split_comment
from jobdeck.catalog.crontab_parse import (
    Comment,
    Entry,
    EnvLine,
    parse_crontab,
    parse_env,
    split_percent,
)
from jobdeck.catalog.crontab_shell import schedule_name, simple_argv
from jobdeck.catalog.load import load_catalog_text
from jobdeck.catalog.model import Catalog, Schedule

CRONTABS = Path(__file__).parent.parent / "data" / "crontabs"


def load(result: CrontabImport) -> Catalog:
    return load_catalog_text(result.yaml, "imported.yaml").catalog


def convert(text: str, **options: bool | str) -> tuple[Catalog, CrontabImport]:
    result = import_crontab(text, source="crontab", **options)  # type: ignore[arg-type]
    return load(result), result


def only(catalog: Catalog) -> Schedule:
    assert len(catalog.schedules) == 1, list(catalog.schedules)
    return next(iter(catalog.schedules.values()))


def warning_lines(result: CrontabImport) -> list[int]:
    return [int(warning.split(":")[1]) for warning in result.warnings]


def comment_block_above(yaml: str, name: str) -> list[str]:
    """The comment lines directly above schedule ``name``."""
    lines = yaml.splitlines()
    index = lines.index(f"  {name}:")
    block: list[str] = []
    while index > 0 and lines[index - 1].lstrip().startswith("#"):
        index -= 1
        block.insert(0, lines[index].strip())
    return block


# --- the fixtures: crontabs as servers have them ---------------------------------------


@pytest.fixture(scope="module")
def app_result() -> CrontabImport:
    text = (CRONTABS / "app-server.crontab").read_text()
    return import_crontab(text, source="app-server.crontab", project="newsroom")


@pytest.fixture(scope="module")
def app_catalog(app_result: CrontabImport) -> Catalog:
    return load(app_result)


class TestAppServer:
    def test_header_names_the_source(self, app_result: CrontabImport) -> None:
        first = app_result.yaml.splitlines()[0]
        assert first.startswith("# Imported from app-server.crontab")

    def test_schedules_keep_crontab_order_and_get_names_from_commands(
        self, app_catalog: Catalog
    ) -> None:
        assert list(app_catalog.schedules) == [
            "artisan-ranking-aggregate",
            "artisan-feed-import",
            "artisan-sitemap-build",
            "rake-reports-daily",
            "backup-db",
            "tar-var-backups",
            "mail",
            "warm-cache",
            "artisan-push-resend-failed",
            "rotate-exports",
            "artisan-ranking-aggregate-2",
        ]
        assert app_catalog.project == "newsroom"

    def test_environment_in_force_at_each_line(self, app_catalog: Catalog) -> None:
        expected = {"PATH": "/usr/local/bin:/usr/bin:/bin", "RAILS_ENV": "production"}
        assert all(s.env == expected for s in app_catalog.schedules.values())

    def test_cron_tz_sets_the_catalog_zone_and_a_later_one_the_schedule_zone(
        self, app_result: CrontabImport, app_catalog: Catalog
    ) -> None:
        assert app_catalog.timezone == "Asia/Tokyo"
        assert app_catalog.schedules["rake-reports-daily"].timezone == "Asia/Tokyo"
        assert app_catalog.schedules["artisan-ranking-aggregate-2"].timezone == "America/New_York"
        assert "timezone:" not in app_result.yaml.split("rake-reports-daily:")[1].split("\n\n")[0]

    def test_shell_syntax_stays_shell_and_simple_commands_become_argv(
        self, app_catalog: Catalog
    ) -> None:
        ranking = app_catalog.schedules["artisan-ranking-aggregate"]
        assert ranking.command is None
        assert ranking.shell == (
            "/usr/bin/php /var/www/app/artisan ranking:aggregate >> /var/log/app/ranking.log 2>&1"
        )
        assert app_catalog.schedules["rake-reports-daily"].shell == (
            "cd /var/www/rails && bundle exec rake reports:daily >> log/cron.log 2>&1"
        )
        assert app_catalog.schedules["rotate-exports"].command == ["/usr/local/bin/rotate-exports"]
        assert app_catalog.schedules["rotate-exports"].cron == "@daily"

    def test_flock_wrappers_become_overlap_skip(self, app_catalog: Catalog) -> None:
        feed = app_catalog.schedules["artisan-feed-import"]
        assert feed.command == ["/usr/bin/php", "/var/www/app/artisan", "feed:import"]
        assert feed.overlap == "skip"
        sitemap = app_catalog.schedules["artisan-sitemap-build"]
        assert sitemap.command == ["php", "/var/www/app/artisan", "sitemap:build", "--quiet"]
        assert sitemap.overlap == "skip"

    def test_escaped_percent_reaches_the_shell_unescaped(self, app_catalog: Catalog) -> None:
        backup = app_catalog.schedules["backup-db"]
        assert backup.shell == "/usr/local/bin/backup-db.sh /var/backups/db-$(date +%Y%m%d).sql.gz"
        assert app_catalog.schedules["tar-var-backups"].shell is not None
        assert "`date +%F`" in app_catalog.schedules["tar-var-backups"].shell

    def test_percent_stdin_becomes_a_here_document(
        self, app_result: CrontabImport, app_catalog: Catalog
    ) -> None:
        assert app_catalog.schedules["mail"].shell == (
            "/usr/bin/mail -s \"daily report\" editors@example.com <<'CRON_STDIN'\n"
            "Good morning,\n"
            "the report is attached.\n"
            "CRON_STDIN"
        )
        assert any(
            "standard input" in line for line in comment_block_above(app_result.yaml, "mail")
        )

    def test_timeout_wrapper_becomes_the_schedule_timeout(self, app_catalog: Catalog) -> None:
        warm = app_catalog.schedules["warm-cache"]
        assert warm.command == ["/usr/local/bin/warm-cache", "--all"]
        assert warm.timeout == timedelta(minutes=30)
        assert app_catalog.schedules["rotate-exports"].timeout == timedelta(hours=1)  # untouched

    def test_commented_out_batch_is_kept_switched_off(
        self, app_result: CrontabImport, app_catalog: Catalog
    ) -> None:
        resend = app_catalog.schedules["artisan-push-resend-failed"]
        assert resend.enabled is False
        assert resend.command == ["/usr/bin/php", "/var/www/app/artisan", "push:resend-failed"]
        above = comment_block_above(app_result.yaml, "artisan-push-resend-failed")
        assert "# line 23: #0 */2 * * * /usr/bin/php /var/www/app/artisan push:resend-failed" in (
            above
        )
        assert "# disabled 2019-03-12 by tanaka: duplicates pushes, see INC-231" in above
        assert all(s.enabled for n, s in app_catalog.schedules.items() if n != resend_name())

    def test_mailto_and_reboot_are_reported_with_line_numbers(
        self, app_result: CrontabImport
    ) -> None:
        assert app_result.warnings == [
            "app-server.crontab:5: MAILTO=ops@example.com is not converted: no mail target",
            "app-server.crontab:28: @reboot is not converted: jobdeck fires schedules by "
            "time; start it with the host (a systemd unit), or make it a worker if it "
            "keeps running",
        ]
        assert 'notify: ["slack:#batch-alerts"]' in app_result.yaml
        assert "# line 28: @reboot /usr/local/bin/start-queue-monitor" in app_result.yaml
        assert "start-queue-monitor:" not in app_result.yaml

    def test_crontab_boilerplate_is_dropped_and_own_comments_kept(
        self, app_result: CrontabImport
    ) -> None:
        assert "DO NOT EDIT THIS FILE" not in app_result.yaml
        assert "m h  dom mon dow" not in app_result.yaml
        assert "# Batch jobs of the news app (www-data on batch01)" in app_result.yaml
        assert "# --- ranking ---" in app_result.yaml


def resend_name() -> str:
    return "artisan-push-resend-failed"


@pytest.fixture(scope="module")
def etc_result() -> CrontabImport:
    text = (CRONTABS / "etc-crontab").read_text()
    return import_crontab(text, source="/etc/crontab", system=True, project="batch01")


@pytest.fixture(scope="module")
def etc_catalog(etc_result: CrontabImport) -> Catalog:
    return load(etc_result)


class TestSystemCrontab:
    def test_run_parts_lines_are_named_after_their_directory(self, etc_catalog: Catalog) -> None:
        assert list(etc_catalog.schedules)[:4] == [
            "cron-hourly",
            "cron-daily",
            "cron-weekly",
            "cron-monthly",
        ]
        daily = etc_catalog.schedules["cron-daily"]
        assert daily.shell == (
            "test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )"
        )
        assert daily.cron == "25 6 * * *"  # the tab between the fields is gone

    def test_user_column_is_a_comment_and_a_warning(self, etc_result: CrontabImport) -> None:
        assert "/etc/crontab:18: ran as user 'root'; jobdeck runs every job as its own user" in (
            etc_result.warnings
        )
        assert (
            "/etc/crontab:26: ran as user 'www-data'; jobdeck runs every job as its own user"
            in (etc_result.warnings)
        )
        above = comment_block_above(etc_result.yaml, "purge-cdn")
        assert "# warning: ran as user 'www-data'; jobdeck runs every job as its own user" in above

    def test_bash_shell_keeps_bash_for_commands_that_need_a_shell(
        self, etc_result: CrontabImport, etc_catalog: Catalog
    ) -> None:
        purge = etc_catalog.schedules["purge-cdn"]
        assert purge.shell is None
        assert purge.command == [
            "/bin/bash",
            "-c",
            "cd /var/www/app && source .env && ./bin/purge-cdn.sh &>> /var/log/purge.log",
        ]
        assert etc_catalog.schedules["logrotate"].command == [
            "/usr/sbin/logrotate",
            "-f",
            "/etc/logrotate.d/newsroom",
        ]
        assert any(w.startswith("/etc/crontab:25: SHELL=/bin/bash") for w in etc_result.warnings)
        assert etc_catalog.schedules["cron-hourly"].shell is not None  # before SHELL=/bin/bash

    def test_a_lock_shared_by_two_jobs_keeps_its_flock(
        self, etc_result: CrontabImport, etc_catalog: Catalog
    ) -> None:
        gc = etc_catalog.schedules["gc-releases"]
        assert gc.command is not None
        assert gc.command[:4] == ["/usr/bin/flock", "-w", "600", "/var/lock/deploy.lock"]
        assert "overlap" not in gc.model_fields_set
        assert any(
            "also taken on line(s) 28" in c
            for c in comment_block_above(etc_result.yaml, "gc-releases")
        )

    def test_format_template_is_no_schedule(
        self, etc_result: CrontabImport, etc_catalog: Catalog
    ) -> None:
        assert "user-name command to be executed" not in etc_result.yaml
        assert "Example of job definition" not in etc_result.yaml
        assert len(etc_catalog.schedules) == 9
        assert etc_catalog.schedules["fstrim-all"].enabled is False

    def test_no_zone_is_a_warning_and_utc(
        self, etc_result: CrontabImport, etc_catalog: Catalog
    ) -> None:
        assert etc_catalog.timezone == "UTC"
        assert etc_result.warnings[0].startswith("/etc/crontab:18: no CRON_TZ")


@pytest.fixture(scope="module")
def messy_result() -> CrontabImport:
    text = (CRONTABS / "messy.crontab").read_bytes().decode()
    assert "\r\n" in text
    assert not text.endswith("\n")
    return import_crontab(text, source="messy.crontab")


@pytest.fixture(scope="module")
def messy_catalog(messy_result: CrontabImport) -> Catalog:
    return load(messy_result)


class TestMessyCrontab:
    def test_bad_lines_are_warnings_with_their_line_numbers(
        self, messy_result: CrontabImport
    ) -> None:
        assert warning_lines(messy_result) == [4, 5, 7, 8, 10, 11, 12, 13, 14, 16, 23, 24]
        assert all(re.match(r"messy\.crontab:\d+: \S", w) for w in messy_result.warnings)
        assert "# line 13, not converted: * * * * /srv/app/bin/four-fields" in messy_result.yaml
        assert "# line 16, not converted: this is not a cron line at all" in messy_result.yaml

    def test_odd_spacing_and_line_ends_do_not_leak_into_values(
        self, messy_catalog: Catalog
    ) -> None:
        poll = messy_catalog.schedules["poll-feeds"]
        assert poll.cron == "*/5 * * * *"
        assert poll.command == ["/srv/app/bin/poll-feeds"]
        assert poll.env == {"LANG": "en_US.UTF-8"}
        assert messy_catalog.schedules["tidy"].command == ["/srv/app/bin/tidy", "\\"]

    def test_names_are_unique(self, messy_catalog: Catalog) -> None:
        assert [n for n in messy_catalog.schedules if n.startswith("poll-feeds")] == [
            "poll-feeds",
            "poll-feeds-2",
            "poll-feeds-3",
            "poll-feeds-4",
        ]
        assert "ops-9" in messy_catalog.schedules  # a name starts with a letter

    def test_macros_and_month_names(self, messy_catalog: Catalog) -> None:
        assert messy_catalog.schedules["upper-macro"].cron == "@daily"
        assert messy_catalog.schedules["annual"].cron == "0 8 1 jan *"
        assert messy_catalog.schedules["ls-reports"].cron == "0 7 * * mon,wed,fri"

    def test_commented_entries_and_prose(
        self, messy_result: CrontabImport, messy_catalog: Catalog
    ) -> None:
        assert messy_catalog.schedules["old-poller"].enabled is False
        weekly = messy_catalog.schedules["weekly-report"]
        assert (weekly.enabled, weekly.shell) == (False, "/srv/app/bin/weekly-report > /dev/null")
        assert "# 5 things to remember about this box" in messy_result.yaml
        assert "command-to" not in " ".join(messy_catalog.schedules)

    def test_tz_after_an_unknown_cron_tz_only_reaches_the_environment(
        self, messy_catalog: Catalog
    ) -> None:
        digest = messy_catalog.schedules["digest"]
        assert digest.env["TZ"] == ":Europe/Berlin"
        assert digest.timezone == "UTC"

    def test_an_unescaped_percent_is_converted_as_cron_ran_it(self, messy_catalog: Catalog) -> None:
        assert messy_catalog.schedules["date"].shell == (
            "date + <<'CRON_STDIN'\nY-\nm-\nd >> /var/log/dates\nCRON_STDIN"
        )


# --- the rules, one at a time --------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("date +\\%Y-\\%m-\\%d", ("date +%Y-%m-%d", None)),
        ("mail -s hi ops%line 1%line 2", ("mail -s hi ops", "line 1\nline 2\n")),
        ("cat%a\\%b%", ("cat", "a%b\n")),
        ("cat%", ("cat", "")),
        ("cat%%", ("cat", "\n")),
        ("echo \\\\%x", ("echo \\\\", "x\n")),
        ("echo a\\b", ("echo a\\b", None)),
        ("cat%x\\y", ("cat", "x\\y\n")),
    ],
)
def test_percent_rule_matches_vixie_cron(command: str, expected: tuple[str, str | None]) -> None:
    assert split_percent(command) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PATH=/usr/bin:/bin", ("PATH", "/usr/bin:/bin")),
        ("RAILS_ENV = production  ", ("RAILS_ENV", "production")),
        ("GREETING = 'hello world'  ", ("GREETING", "hello world")),
        ('MAILTO=""', ("MAILTO", "")),
        ("FOO=a b c", ("FOO", "a b c")),
        ("FOO=", ("FOO", "")),
        ("0 * * * * FOO=bar /bin/job", None),
        ("*/5 * * * * x", None),
        ("FOO='open", None),
        ("FOO='a' trailing", None),
        ("=value", None),
    ],
)
def test_environment_lines_follow_vixie_load_env(
    line: str, expected: tuple[str, str] | None
) -> None:
    assert parse_env(line) == expected


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("/usr/bin/php /var/www/artisan x:y", ["/usr/bin/php", "/var/www/artisan", "x:y"]),
        ("backup --label 'nightly run'", ["backup", "--label", "nightly run"]),
        ('say "a \\"quoted\\" word"', ["say", 'a "quoted" word']),
        ("run a\\ b", ["run", "a b"]),
        ("cd /app && make", None),
        ("job >> /var/log/job.log 2>&1", None),
        ("job | logger", None),
        ("job; other", None),
        ("job $HOME", None),
        ('job "$HOME"', None),
        ("rm /tmp/*.tmp", None),
        ("ls ~/x", None),
        ("FOO=1 job", None),
        ("export X", None),
        ("job # note", None),
        ("job &", None),
        ("echo `date`", None),
        ("(job)", None),
    ],
)
def test_argv_only_without_shell_syntax(command: str, argv: list[str] | None) -> None:
    assert simple_argv(command) == argv


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("/usr/bin/php /var/www/app/artisan ranking:aggregate", "artisan-ranking-aggregate"),
        ("cd /app && ./bin/cleanup.sh >> log", "cleanup"),
        ("cd /srv && RAILS_ENV=production bundle exec rake feeds:refresh", "rake-feeds-refresh"),
        ("/usr/bin/python3 -m newsroom.batch.ranking --window 24h", "newsroom-batch-ranking"),
        ("python3 /opt/jobs/send_digest.py", "send-digest"),
        ("java -jar /opt/report.jar weekly", "report-weekly"),
        ("nice -n 19 ionice -c3 /usr/local/bin/backup.sh --full", "backup"),
        ("sudo -u www-data php artisan schedule:run", "artisan-schedule-run"),
        ("sleep 30; /usr/local/bin/poll", "poll"),
        ("/usr/bin/mysqldump -u root db | gzip > /backups/db.gz", "mysqldump"),
        ("bash -c 'cd /x && ./deploy.sh'", "deploy"),
        ("flock -n /tmp/l -c 'php artisan a:b'", "artisan-a-b"),
        ("if [ -f /tmp/go ]; then /opt/bin/go-live; fi", "go-live"),
        ("for f in /tmp/*.x; do rm $f; done", "rm"),
        ("echo ok", "echo-ok"),
        ("/usr/bin/123", "job"),
        ("", "job"),
    ],
)
def test_schedule_names_come_from_the_command(command: str, name: str) -> None:
    assert schedule_name(command) == name


@pytest.mark.parametrize(
    "line",
    [
        "# m h  dom mon dow   command",
        "# *  *  *  *  * command to be executed",
        "# minute (0 - 59)",
        "#@reboot /usr/bin/something",
        "# 30 2 is when the backup starts",
        "#MAILTO=someone",
        "#",
    ],
)
def test_comments_that_are_not_disabled_entries(line: str) -> None:
    assert isinstance(parse_crontab(line, system=False)[0], Comment)


@pytest.mark.parametrize(
    "line",
    ["# 0 3 * * * /usr/bin/backup", "#*/5 * * * * poll", "##\t@daily /bin/rotate"],
)
def test_commented_out_entries(line: str) -> None:
    entry = parse_crontab(line, system=False)[0]
    assert isinstance(entry, Entry)
    assert entry.disabled


def test_each_entry_gets_the_environment_in_force_at_its_line() -> None:
    catalog, _ = convert(
        "0 1 * * * /bin/first\nA=1\n0 2 * * * /bin/second\nA=2\nB=x y\n0 3 * * * /bin/third\n"
    )
    assert [s.env for s in catalog.schedules.values()] == [{}, {"A": "1"}, {"A": "2", "B": "x y"}]


def test_shell_and_cron_settings_do_not_go_into_env() -> None:
    catalog, result = convert(
        "SHELL=/bin/sh\nMAILTO=a@b.c\nCRON_TZ=Europe/Paris\nHOME=/srv\n0 1 * * * /bin/x\n"
    )
    assert only(catalog).env == {"HOME": "/srv"}
    assert catalog.timezone == "Europe/Paris"
    assert warning_lines(result) == [2]


@pytest.mark.parametrize(
    ("command", "overlap", "argv"),
    [
        ("flock -n /tmp/a.lock /bin/job --x", "skip", ["/bin/job", "--x"]),
        ("flock -xn /tmp/a.lock /bin/job", "skip", ["/bin/job"]),
        ("/usr/bin/flock -n /tmp/a.lock /bin/job", "skip", ["/bin/job"]),
        ("flock --nonblock /tmp/a.lock /bin/job", "skip", ["/bin/job"]),
        ("flock -n -x /tmp/a.lock /bin/job", "skip", ["/bin/job"]),
        ("flock -w 0 /tmp/a.lock /bin/job", "skip", ["/bin/job"]),
        ("flock /tmp/a.lock /bin/job", "buffer_one", ["/bin/job"]),
        ("flock -w 60 /tmp/a.lock /bin/job", "buffer_one", ["/bin/job"]),
    ],
)
def test_flock_is_unwrapped_into_an_overlap_policy(
    command: str, overlap: str, argv: list[str]
) -> None:
    catalog, result = convert(f"0 * * * * {command}\n", project="p")
    schedule = only(catalog)
    assert (schedule.overlap, schedule.command) == (overlap, argv)
    assert ("buffer_one" in " ".join(result.warnings)) == (overlap == "buffer_one")


def test_flock_with_shell_syntax_and_a_cd_prefix() -> None:
    catalog, _ = convert("0 * * * * cd /app && flock -n /tmp/a.lock ./run.sh >> out.log 2>&1\n")
    assert only(catalog).shell == "cd /app && ./run.sh >> out.log 2>&1"
    assert only(catalog).overlap == "skip"
    catalog, _ = convert("0 * * * * flock -n /tmp/a.lock -c 'cd /app && ./run.sh'\n")
    assert only(catalog).shell == "cd /app && ./run.sh"


@pytest.mark.parametrize(
    "command",
    [
        "flock -s /tmp/a.lock /bin/job",  # a shared lock: others may hold it too
        "flock -n -E 3 /tmp/a.lock /bin/job",
        "flock -n 9 /bin/job",
        "flock -n /tmp/a.lock -c 'a && b' > out",
    ],
)
def test_flock_forms_jobdeck_cannot_express_are_kept(command: str) -> None:
    catalog, result = convert(f"0 * * * * {command}\n")
    schedule = only(catalog)
    assert "overlap" not in schedule.model_fields_set
    first = schedule.command[0] if schedule.command else schedule.shell
    assert first is not None
    assert first.startswith("flock")
    assert "flock kept" in result.yaml


@pytest.mark.parametrize(
    ("command", "timeout", "grace"),
    [
        ("timeout 90 /bin/job", timedelta(seconds=90), None),
        ("timeout -k 30s 2h /bin/job", timedelta(hours=2), timedelta(seconds=30)),
        ("timeout --kill-after=1m 1.5h /bin/job", timedelta(minutes=90), timedelta(minutes=1)),
    ],
)
def test_timeout_wrapper(command: str, timeout: timedelta, grace: timedelta | None) -> None:
    schedule = only(convert(f"0 * * * * {command}\n")[0])
    assert schedule.command == ["/bin/job"]
    assert schedule.timeout == timeout
    assert schedule.kill_grace == (grace or timedelta(seconds=10))


@pytest.mark.parametrize(
    "command", ["timeout -s KILL 1h /bin/job", "timeout 0 /bin/job", "timeout 5x /bin/job"]
)
def test_timeout_wrapper_kept_when_it_means_more(command: str) -> None:
    schedule = only(convert(f"0 * * * * {command}\n")[0])
    assert schedule.command is not None
    assert schedule.command[0] == "timeout"
    assert schedule.timeout == timedelta(hours=1)


def test_zone_changes_midway_and_unknown_zones() -> None:
    catalog, result = convert(
        "CRON_TZ=Asia/Tokyo\n0 1 * * * /bin/a\nCRON_TZ=Nowhere/Land\n0 2 * * * /bin/b\n"
        "CRON_TZ=Europe/London\n0 3 * * * /bin/c\n"
    )
    assert catalog.timezone == "Asia/Tokyo"
    assert [s.timezone for s in catalog.schedules.values()] == [
        "Asia/Tokyo",
        "UTC",
        "Europe/London",
    ]
    assert warning_lines(result) == [3, 4]


def test_tz_counts_as_the_zone_when_there_is_no_cron_tz() -> None:
    catalog, result = convert("TZ=Asia/Tokyo\n0 9 * * * /bin/morning\n")
    assert catalog.timezone == "Asia/Tokyo"
    assert only(catalog).env == {"TZ": "Asia/Tokyo"}
    assert result.warnings[0].startswith("crontab:1: TZ=Asia/Tokyo is taken as")


def test_names_that_yaml_would_misread_are_quoted() -> None:
    catalog, _ = convert("0 * * * * true\n0 * * * * /usr/bin/null --x\nyes=1\nOn=2\n@daily y\n")
    assert list(catalog.schedules) == ["true", "null", "y"]
    assert catalog.schedules["y"].env == {"yes": "1", "On": "2"}


def test_a_shell_other_than_sh_wraps_stdin_commands_too() -> None:
    catalog, _ = convert("SHELL=/bin/bash\n0 * * * * cat > /tmp/x%hello\n")
    assert only(catalog).command == [
        "/bin/bash",
        "-c",
        "{\ncat > /tmp/x\n} <<'CRON_STDIN'\nhello\nCRON_STDIN",
    ]


def test_here_document_delimiter_never_clashes_with_the_input() -> None:
    schedule = only(convert("0 * * * * cat%CRON_STDIN%x\n")[0])
    assert schedule.shell == "cat <<'CRON_STDIN_'\nCRON_STDIN\nx\nCRON_STDIN_"


def test_reboot_and_empty_input() -> None:
    catalog, result = convert("@reboot /usr/bin/start\n")
    assert catalog.schedules == {}
    assert warning_lines(result) == [1]
    for text in ("", "\n\n", "   \t\n", "\ufeff", "# just a comment"):
        assert convert(text)[0].schedules == {}


def test_invalid_project_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid project name"):
        import_crontab("", project="Bad Name")


def test_env_line_objects() -> None:
    (line,) = parse_crontab("  LANG = 'C.UTF-8'\r\n", system=False)
    assert line == EnvLine(1, "  LANG = 'C.UTF-8'", "LANG", "C.UTF-8")


# --- whatever the input, the output loads ---------------------------------------------

_FIELD = st.sampled_from(
    ["*", "0", "5", "*/5", "1-5", "mon-fri", "jan", "61", "x", "1,2,3", "*/0", "0-23/2", "7"]
)
_WORD = st.sampled_from(
    [
        "/usr/bin/php",
        "artisan",
        "a:b",
        "flock",
        "-n",
        "-w",
        "10",
        "/tmp/x.lock",
        "timeout",
        "1h",
        "-c",
        "cd",
        "&&",
        "||",
        ";",
        "|",
        ">>",
        "2>&1",
        "%",
        "\\%",
        "'",
        '"',
        "$HOME",
        "`date`",
        "#",
        "*",
        "~",
        "\\",
        "true",
        "null",
        "-",
        "0",
        "é",
        "\u2028",
        "\x85",
        "\x00",
        "\ufeff",
        "\t",
        "CRON_STDIN",
        "{",
        "}",
        ": ",
        "- ",
        "? ",
        "&anchor",
        "*alias",
        "!tag",
        "@",
        "%%",
    ]
)
_COMMAND = st.lists(st.one_of(_WORD, st.text(max_size=6)), min_size=0, max_size=8).map(
    lambda words: " ".join(words)
)
_ENTRY = st.builds(
    lambda fields, command, hashes: hashes + " ".join(fields) + " " + command,
    st.lists(_FIELD, min_size=4, max_size=6),
    _COMMAND,
    st.sampled_from(["", "", "#", "# ", "##"]),
)
_MACRO = st.builds(
    lambda macro, command: f"{macro} {command}",
    st.sampled_from(["@daily", "@HOURLY", "@reboot", "@every", "@annually", "@midnight"]),
    _COMMAND,
)
_ENV = st.builds(
    lambda name, spaces, value: f"{name}{spaces}={spaces}{value}",
    st.sampled_from(
        ["PATH", "SHELL", "MAILTO", "CRON_TZ", "TZ", "A-B", "'Q N'", "true", "_x", "RANDOM_DELAY"]
    ),
    st.sampled_from(["", " ", "\t"]),
    st.one_of(
        st.sampled_from(
            ["/bin/bash", "/bin/sh", "Asia/Tokyo", ":UTC", "America", "'quoted'", '""', "a@b"]
        ),
        st.text(max_size=10),
    ),
)
_LINE = st.one_of(_ENTRY, _MACRO, _ENV, st.text(max_size=30), st.just(""), st.just("# note"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_LINE, max_size=12),
    newline=st.sampled_from(["\n", "\r\n"]),
    system=st.booleans(),
)
def test_generated_crontabs_always_give_a_catalog_that_loads(
    lines: list[str], newline: str, system: bool
) -> None:
    result = import_crontab(newline.join(lines), source="gen.crontab", system=system)
    catalog = load(result)
    assert all(re.fullmatch(r"gen\.crontab:\d+: .+", w, re.DOTALL) for w in result.warnings)
    assert not any("the catalog rejects it" in w for w in result.warnings)
    assert len(catalog.schedules) <= len(lines)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    load(import_crontab(text))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda t: "\n" not in t and "\r" not in t))
def test_commands_survive_the_round_trip(command: str) -> None:
    """Whatever the command, the catalog holds what cron would have run."""
    line = f"0 * * * * {command}"
    result = import_crontab(line)
    catalog = load(result)
    parsed = parse_crontab(line, system=False)
    if not catalog.schedules:
        return
    entry = parsed[0]
    assert isinstance(entry, Entry)
    run, stdin = split_percent(entry.command)
    schedule = only(catalog)
    run = split_comment(run)[0]  # a trailing shell comment goes to the description
    if not schedule.enabled:
        assert schedule.shell == run.strip(" \t")  # cron could not run it: kept as it was
    if stdin is None and schedule.shell is not None:
        assert schedule.shell == run.strip(" \t") or "unwrapped" in result.yaml
    if schedule.command is not None and stdin is None and "unwrapped" not in result.yaml:
        assert schedule.command == simple_argv(run)


def test_a_line_cron_could_not_run_is_imported_switched_off_never_as_commands() -> None:
    line = '0 6 * * * echo "report for %date%" | /app/bin/mailer%line two%line three'
    catalog, result = convert(line)
    schedule = only(catalog)
    # cron ran `echo "report for ` (the first % ends the command): a syntax error.
    assert schedule.enabled is False
    assert schedule.shell == 'echo "report for'
    assert schedule.command is None
    values = [row for row in result.yaml.splitlines() if not row.lstrip().startswith("#")]
    assert not [row for row in values if "mailer" in row or "line two" in row]
    assert f"# line 1: {line}" in result.yaml  # the original line, kept
    [warning] = [w for w in result.warnings if "CRON_TZ" not in w]
    assert warning.startswith("crontab:1: cron could not run this line")
    assert "enabled: false" in warning
    assert "# warning: cron could not run this line" in result.yaml


def test_an_open_quote_without_percent_is_switched_off_too() -> None:
    catalog, result = convert("15 * * * * /app/bin/report --title 'weekly")
    assert only(catalog).enabled is False
    assert "cron could not run this line" in result.warnings[0]


def test_a_commented_out_jobs_trailing_comment_becomes_its_description() -> None:
    catalog, result = convert(
        "# 30 2 * * * /app/bin/cleanup --all   # disabled 2019-03-02 INC-1042\n"
    )
    schedule = only(catalog)
    assert schedule.enabled is False
    assert schedule.command == ["/app/bin/cleanup", "--all"]
    assert schedule.shell is None
    assert schedule.description == "disabled 2019-03-02 INC-1042"
    assert not [w for w in result.warnings if "CRON_TZ" not in w]


def test_environment_lines_shared_by_every_job_go_under_defaults_once() -> None:
    text = (
        "PATH=/usr/local/bin:/usr/bin:/bin\n"
        "APP_ENV=production\n"
        "0 1 * * * /app/bin/one\n"
        "FEED=news\n"
        "0 2 * * * /app/bin/two\n"
        "# 0 3 * * * /app/bin/three\n"
    )
    catalog, result = convert(text)
    shared = {"PATH": "/usr/local/bin:/usr/bin:/bin", "APP_ENV": "production"}
    assert catalog.defaults.env == shared
    assert result.yaml.count('PATH: "') == 1
    assert result.yaml.count('APP_ENV: "') == 1
    assert catalog.schedules["one"].env == shared
    assert catalog.schedules["two"].env == {**shared, "FEED": "news"}
    assert catalog.schedules["three"].env == {**shared, "FEED": "news"}
    assert result.yaml.count('FEED: "') == 2  # not every job had it


def test_a_tool_on_the_path_is_named_after_what_it_works_on() -> None:
    catalog, _ = convert(
        "@daily find /var/tmp -name '*.tmp' -mtime +7 -delete\n"
        "@daily find /srv/cache -type f -mtime +30 -delete\n"
        "@weekly rsync -a /data/ backup:/data/\n"
    )
    assert list(catalog.schedules) == ["find-var-tmp", "find-srv-cache", "rsync-data"]
