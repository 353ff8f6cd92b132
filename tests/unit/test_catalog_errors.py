"""Every kind of catalog error, with the exact ``FILE:LINE:COL: error: MESSAGE`` line.

Each snippet is small, so that the line and column can be checked by eye: line 1 is
``version: 1``, line 2 is ``project: demo`` unless the case is about those keys.
"""

from __future__ import annotations

import textwrap

import pytest

from jobdeck.catalog.load import CatalogError, LoadedCatalog, load_catalog_text


def errors(text: str) -> list[str]:
    """The reported lines for ``text``; fails if it loads."""
    with pytest.raises(CatalogError) as info:
        load_catalog_text(textwrap.dedent(text).lstrip("\n"), "c.yaml")
    assert str(info.value) == "\n".join(str(d) for d in info.value.diagnostics)
    return [str(d) for d in info.value.diagnostics]


def loads(text: str) -> LoadedCatalog:
    return load_catalog_text(textwrap.dedent(text).lstrip("\n"), "c.yaml")


# --- YAML itself and the top level ---------------------------------------------------------


def test_yaml_syntax_error_points_at_the_problem() -> None:
    assert errors(
        """
        version: 1
        project: demo
        pools: [
        """
    ) == [
        "c.yaml:4:1: error: invalid YAML: expected the node content, but found the end of "
        "the file (while parsing a flow node); check the indentation, quotes and brackets here"
    ]


def test_yaml_unclosed_quote() -> None:
    assert errors(
        """
        version: 1
        project: "demo
        """
    ) == [
        "c.yaml:3:1: error: invalid YAML: found unexpected the end of the file "
        "(while scanning a quoted scalar); check the indentation, quotes and brackets here"
    ]


def test_tab_indentation() -> None:
    assert errors("version: 1\nproject: demo\npools:\n\tbatch: {}\n") == [
        "c.yaml:4:1: error: a tab character cannot indent YAML; indent with spaces"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """
            version: 1
            project: demo
            project: other
            """,
            "c.yaml:3:1: error: duplicate key 'project': a key can appear once in a mapping; "
            "keep only one of them",
        ),
        (
            """
            version: 1
            project: demo
            pools:
              batch: {}
              batch: {memory: 1GiB}
            """,
            "c.yaml:5:3: error: duplicate key 'batch': a key can appear once in a mapping; "
            "keep only one of them",
        ),
        (
            """
            version: 1
            project: demo
            pools:
              batch: {memory: 1GiB, memory: 2GiB}
            """,
            "c.yaml:4:25: error: duplicate key 'memory': a key can appear once in a mapping; "
            "keep only one of them",
        ),
    ],
)
def test_duplicate_keys(text: str, expected: str) -> None:
    assert errors(text) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "",
            "c.yaml:1:1: error: top level: the catalog is empty; "
            "start it with 'version: 1' and 'project: NAME'",
        ),
        (
            "# only a comment\n",
            "c.yaml:1:1: error: top level: the catalog is empty; "
            "start it with 'version: 1' and 'project: NAME'",
        ),
        (
            "# a list\n- version: 1\n",
            "c.yaml:2:3: error: top level: expected a mapping of keys, found a list; "
            "start it with 'version: 1' and 'project: NAME'",
        ),
        (
            "hello\n",
            "c.yaml:1:1: error: top level: expected a mapping of keys, found text ('hello'); "
            "start it with 'version: 1' and 'project: NAME'",
        ),
        (
            "42\n",
            "c.yaml:1:1: error: top level: expected a mapping of keys, found a number (42); "
            "start it with 'version: 1' and 'project: NAME'",
        ),
    ],
)
def test_top_level_must_be_a_mapping(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_missing_version_and_project() -> None:
    assert errors("timezone: UTC\n") == [
        "c.yaml:1:1: error: top level: missing required key 'project'; "
        "add 'project: NAME', e.g. 'project: newsroom'",
        "c.yaml:1:1: error: top level: missing required key 'version'; add 'version: 1'",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("2", "2"), ("0", "0"), ("'1'", "'1'"), ("v1", "'v1'")],
)
def test_wrong_version(value: str, shown: str) -> None:
    assert errors(f"version: {value}\nproject: demo\n") == [
        f"c.yaml:1:10: error: version: unsupported version {shown}; "
        "only version 1 exists, write 'version: 1'"
    ]


def test_non_text_key() -> None:
    assert errors("version: 1\nproject: demo\n5: x\n") == [
        "c.yaml:3:1: error: top level: invalid key 5: keys are text; quote it or rename it"
    ]


# --- unknown keys, with did-you-mean, at every level ------------------------------------------

UNKNOWN_KEYS = [
    ("timezon: UTC", "3:1", "top level: unknown key 'timezon'; did you mean 'timezone'?"),
    (
        "defaults:\n  timout: 1h",
        "4:3",
        "defaults: unknown key 'timout'; did you mean 'timeout'?",
    ),
    (
        "pools:\n  batch:\n    memroy: 1GiB",
        "5:5",
        "pools.batch: unknown key 'memroy'; did you mean 'memory'?",
    ),
    (
        "queues:\n  jobs:\n    fifoo: true",
        "5:5",
        "queues.jobs: unknown key 'fifoo'; did you mean 'fifo'?",
    ),
    (
        "schedules:\n  nightly:\n    cron: '@daily'\n    command: [run]\n    timout: 1h",
        "7:5",
        "schedules.nightly: unknown key 'timout'; did you mean 'timeout'?",
    ),
    (
        "workers:\n  indexer:\n    command: [run]\n    replica: 2",
        "6:5",
        "workers.indexer: unknown key 'replica'; did you mean 'replicas'?",
    ),
    (
        "commands:\n  push:\n    command: [run]\n    descripton: x",
        "6:5",
        "commands.push: unknown key 'descripton'; did you mean 'description'?",
    ),
    (
        "commands:\n  push:\n    command: [run]\n    params:\n      title: {typ: string}",
        "7:15",
        "commands.push.params.title: unknown key 'typ'; did you mean 'type'?",
    ),
    (
        "schedules:\n  nightly:\n    cron: '@daily'\n    command: [run]\n    retry: {lanch: 1}",
        "7:13",
        "schedules.nightly.retry: unknown key 'lanch'; did you mean 'launch'?",
    ),
    (
        "queues:\n  jobs: {}\nworkers:\n  indexer:\n    command: [run]\n    queue: jobs\n"
        "    autoscale: {max: 3, backlog: 10}",
        "9:25",
        "workers.indexer.autoscale: unknown key 'backlog'; did you mean 'backlog_per_replica'?",
    ),
    (
        "commands:\n  push:\n    command: [run]\n    allow: {channel: [C1]}",
        "6:13",
        "commands.push.allow: unknown key 'channel'; did you mean 'channels'?",
    ),
    (
        "defaults:\n  zzz: 1",
        "4:3",
        "defaults: unknown key 'zzz'; remove it or use one of: timeout, kill_grace, "
        "stop_grace, notify, pool, env, workdir, memory, cpus, retry, overlap, catchup, "
        "catchup_window, jitter, image, capacity, notify_policy",
    ),
]


@pytest.mark.parametrize(("body", "where", "message"), UNKNOWN_KEYS)
def test_unknown_keys(body: str, where: str, message: str) -> None:
    assert errors(f"version: 1\nproject: demo\n{body}\n") == [f"c.yaml:{where}: error: {message}"]


# --- cron ----------------------------------------------------------------------------------


def schedule_with(line: str) -> str:
    return f"version: 1\nproject: demo\nschedules:\n  nightly:\n    {line}\n    command: [run]\n"


CRON_HINT = (
    "write five fields (minute hour day-of-month month day-of-week), e.g. '*/10 * * * *', "
    "or one of @hourly @daily @weekly @monthly @yearly"
)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("'* * * *'", f"invalid cron expression '* * * *': it has 4 fields; {CRON_HINT}"),
        (
            "'0 0 * * * *'",
            f"invalid cron expression '0 0 * * * *': it has 6 fields; {CRON_HINT}",
        ),
        (
            "'61 * * * *'",
            "invalid cron expression '61 * * * *': bad minute field '61'; "
            "use 0-59, a range, a list or a step such as */15",
        ),
        (
            "'0 24 * * *'",
            "invalid cron expression '0 24 * * *': bad hour field '24'; "
            "use 0-23, a range, a list or a step such as */2",
        ),
        (
            "'0 0 32 * *'",
            "invalid cron expression '0 0 32 * *': bad day-of-month field '32'; "
            "use 1-31, a range, a list or a step",
        ),
        (
            "'0 0 * FOO *'",
            "invalid cron expression '0 0 * FOO *': bad month field 'FOO'; "
            "use 1-12 or JAN-DEC, a range, a list or a step",
        ),
        (
            "'0 0 * * 8'",
            "invalid cron expression '0 0 * * 8': bad day-of-week field '8'; "
            "use 0-7 (0 and 7 are Sunday) or SUN-SAT, a range, a list or a step",
        ),
        (
            "'*/0 * * * *'",
            "invalid cron expression '*/0 * * * *': bad minute field '*/0'; "
            "use 0-59, a range, a list or a step such as */15",
        ),
        (
            "'0 0 30 2 *'",
            "invalid cron expression '0 0 30 2 *': it never fires, because no month it names "
            "has day 30; check the day-of-month and month fields",
        ),
        (
            "'0 0 31 APR,JUN *'",
            "invalid cron expression '0 0 31 APR,JUN *': it never fires, because no month it "
            "names has day 31; check the day-of-month and month fields",
        ),
        (
            "'@reboot'",
            "@reboot is not supported: jobdeck fires schedules by time only; "
            "start the job with the service that starts the host, or give a time",
        ),
        ("'@fortnightly'", f"unknown cron macro '@fortnightly'; {CRON_HINT}"),
        ("5", f"invalid cron expression 5; {CRON_HINT}"),
    ],
)
def test_bad_cron(cron: str, message: str) -> None:
    assert errors(schedule_with(f"cron: {cron}")) == [
        f"c.yaml:5:11: error: schedules.nightly.cron: {message}"
    ]


@pytest.mark.parametrize(
    "cron", ["'0 0 * JAN MON'", "'0 9 * * mon-fri'", "'@Daily'", "'0 0 29 2 *'", "'0 0 * * 7'"]
)
def test_valid_cron_spellings(cron: str) -> None:
    assert loads(schedule_with(f"cron: {cron}")).catalog.schedules["nightly"].cron


# --- durations and sizes ---------------------------------------------------------------------

DURATION_HINT = "write a duration such as 500ms, 30s, 15m, 2h, 1d or 1h30m"
SIZE_HINT = "write a size such as 512MiB, 2GiB, 256Mi or 1G"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1x", f"invalid duration '1x'; {DURATION_HINT}"),
        ("15 m", f"invalid duration '15 m'; {DURATION_HINT}"),
        ("-5s", f"invalid duration '-5s'; {DURATION_HINT}"),
        ("1h30", f"invalid duration '1h30'; {DURATION_HINT}"),
        ("'٣s'", f"invalid duration '٣s'; {DURATION_HINT}"),
        (
            "30m1h",
            "invalid duration '30m1h': units must go from the largest to the smallest, "
            f"each once; {DURATION_HINT}",
        ),
        ("90", f"invalid duration 90: a unit is required; {DURATION_HINT}"),
        ("1.5", f"invalid duration 1.5: a unit is required; {DURATION_HINT}"),
        ("true", f"invalid duration True: a unit is required; {DURATION_HINT}"),
    ],
)
def test_bad_durations(value: str, message: str) -> None:
    text = schedule_with("rate: 1m") + f"    timeout: {value}\n"
    assert errors(text) == [f"c.yaml:7:14: error: schedules.nightly.timeout: {message}"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "512",
            "invalid size 512: a number without a unit is ambiguous; "
            "add one, e.g. '512MiB' (or '512B' for bytes)",
        ),
        (
            "'512'",
            "invalid size '512': a number without a unit is ambiguous; "
            "add one, e.g. '512MiB' (or '512B' for bytes)",
        ),
        (
            "1.5",
            "invalid size 1.5: a number without a unit is ambiguous; "
            "add one, e.g. '1.5MiB' (or '1.5B' for bytes)",
        ),
        ("12XB", f"invalid size '12XB'; {SIZE_HINT}"),
        ("512mib", f"invalid size '512mib'; {SIZE_HINT}"),
        ("-1MiB", f"invalid size '-1MiB'; {SIZE_HINT}"),
        ("0MiB", f"invalid size '0MiB': it must be greater than zero; {SIZE_HINT}"),
        (
            "1.5B",
            "invalid size '1.5B': it is not a whole number of bytes; "
            "use a smaller unit, e.g. 1536MiB for 1.5GiB",
        ),
        ("[1]", f"invalid size [1]; {SIZE_HINT}"),
    ],
)
def test_bad_sizes(value: str, message: str) -> None:
    assert errors(f"version: 1\nproject: demo\npools:\n  batch:\n    memory: {value}\n") == [
        f"c.yaml:5:13: error: pools.batch.memory: {message}"
    ]


# --- time zones ----------------------------------------------------------------------------


def test_unknown_time_zones_with_did_you_mean() -> None:
    assert errors(
        """
        version: 1
        project: demo
        timezone: Asia/Tokio
        schedules:
          nightly:
            cron: '@daily'
            timezone: Europe/Londn
            command: [run]
          other:
            cron: '@daily'
            timezone: Nowhere/Qqqqq
            command: [run]
        """
    ) == [
        "c.yaml:3:11: error: timezone: unknown time zone 'Asia/Tokio'; did you mean 'Asia/Tokyo'?",
        "c.yaml:7:15: error: schedules.nightly.timezone: unknown time zone 'Europe/Londn'; "
        "did you mean 'Europe/London'?",
        "c.yaml:11:15: error: schedules.other.timezone: unknown time zone 'Nowhere/Qqqqq'; "
        "write an IANA name such as 'Asia/Tokyo'",
    ]


# --- references ----------------------------------------------------------------------------


def test_references_to_undeclared_pools_and_queues() -> None:
    assert errors(
        """
        version: 1
        project: demo
        defaults:
          pool: bach
        pools:
          batch: {}
        queues:
          feed-index: {}
        schedules:
          nightly:
            cron: '@daily'
            command: [run]
            pool: zzz
        workers:
          indexer:
            command: [run]
            queue: feed-idx
            pool: batchy
        commands:
          push:
            command: [run]
            pool: tools
        """
    ) == [
        "c.yaml:4:9: error: defaults.pool: unknown pool 'bach'; did you mean 'batch'?",
        "c.yaml:13:11: error: schedules.nightly.pool: unknown pool 'zzz'; "
        "declare it under 'pools:' (declared: batch)",
        "c.yaml:17:12: error: workers.indexer.queue: unknown queue 'feed-idx'; "
        "did you mean 'feed-index'?",
        "c.yaml:18:11: error: workers.indexer.pool: unknown pool 'batchy'; did you mean 'batch'?",
        "c.yaml:22:11: error: commands.push.pool: unknown pool 'tools'; "
        "declare it under 'pools:' (declared: batch)",
    ]


def test_reference_without_any_declared() -> None:
    assert errors(
        """
        version: 1
        project: demo
        workers:
          indexer:
            command: [run]
            queue: jobs
        """
    ) == [
        "c.yaml:6:12: error: workers.indexer.queue: unknown queue 'jobs'; "
        "declare it under 'queues:' (declared: none)"
    ]


# --- placeholders --------------------------------------------------------------------------


def test_placeholders() -> None:
    lines = errors(
        """
        version: 1
        project: demo
        commands:
          push:
            command: [run, '{titl}', '{x', 'y}', '{title!r}', '{title:>5}', '{{ok}}', '{}']
            params:
              title: {}
          bare:
            command: [run, --url, '{url}']
        """
    )
    assert lines == [
        "c.yaml:5:20: error: commands.push.command[1]: placeholder {titl} names no declared "
        "param; did you mean '{title}'?",
        "c.yaml:5:30: error: commands.push.command[2]: unbalanced '{' in '{x'; write a "
        "placeholder as {name}, and a literal brace twice ('{{' or '}}')",
        "c.yaml:5:36: error: commands.push.command[3]: unbalanced '}' in 'y}'; write a "
        "placeholder as {name}, and a literal brace twice ('{{' or '}}')",
        "c.yaml:5:42: error: commands.push.command[4]: placeholder {title!r} takes no format "
        "or conversion; write {title}",
        "c.yaml:5:55: error: commands.push.command[5]: placeholder {title:>5} takes no format "
        "or conversion; write {title}",
        "c.yaml:5:79: error: commands.push.command[7]: empty placeholder {}; name a param, "
        "e.g. {title}, or write '{{}}'",
        "c.yaml:9:27: error: commands.bare.command[2]: placeholder {url} names no declared "
        "param; declare it under 'params:', or write '{{' for a literal brace",
    ]


def test_literal_braces_and_declared_placeholders_load() -> None:
    loaded = loads(
        """
        version: 1
        project: demo
        commands:
          push:
            command: [run, '{{literal}}', '--title={title}']
            params:
              title: {}
        """
    )
    assert loaded.catalog.commands["push"].placeholders() == [(2, "title")]


# --- names ---------------------------------------------------------------------------------

NAME_RULE = "use lowercase letters, digits and '-', starting with a letter, at most 63 characters"


@pytest.mark.parametrize(
    ("section", "body"),
    [
        ("pools", "{}"),
        ("queues", "{}"),
        ("schedules", "{cron: '@daily', command: [run]}"),
        ("workers", "{command: [run]}"),
        ("commands", "{command: [run]}"),
    ],
)
@pytest.mark.parametrize("name", ["Batch", "1st", "with_underscore", "-dash", "a" * 64])
def test_bad_names_of_every_kind(section: str, body: str, name: str) -> None:
    assert errors(f"version: 1\nproject: demo\n{section}:\n  {name}: {body}\n") == [
        f"c.yaml:4:3: error: {section}: invalid name '{name}'; {NAME_RULE}"
    ]


def test_longest_name_is_accepted() -> None:
    name = "a" * 63
    assert name in loads(f"version: 1\nproject: demo\npools:\n  {name}: {{}}\n").catalog.pools


@pytest.mark.parametrize("name", ["Demo", "9lives", "a" * 33, "my_project"])
def test_bad_project_names(name: str) -> None:
    assert errors(f"version: 1\nproject: {name}\n") == [
        f"c.yaml:2:10: error: project: invalid project name '{name}'; use lowercase "
        "letters, digits and '-', starting with a letter, at most 32 characters"
    ]


def test_non_text_name() -> None:
    assert errors("version: 1\nproject: demo\npools:\n  5: {}\n") == [
        f"c.yaml:4:3: error: pools: invalid name 5; {NAME_RULE}"
    ]


@pytest.mark.parametrize("param", ["Title", "1x", "with-dash", "a" * 64])
def test_bad_param_names(param: str) -> None:
    assert errors(
        f"version: 1\nproject: demo\ncommands:\n  push:\n    command: [run]\n"
        f"    params:\n      {param}: {{}}\n"
    ) == [
        f"c.yaml:7:7: error: commands.push.params: invalid parameter name '{param}'; "
        "use lowercase letters, digits and '_', not starting with a digit"
    ]


def test_bad_env_name() -> None:
    assert errors(schedule_with("rate: 1m") + "    env: {1A: x}\n") == [
        "c.yaml:7:11: error: schedules.nightly.env: invalid environment variable name '1A'; "
        "use letters, digits and '_', not starting with a digit"
    ]


# --- one of two keys -----------------------------------------------------------------------


def test_both_and_neither_of_cron_rate_and_command_shell() -> None:
    assert errors(
        """
        version: 1
        project: demo
        schedules:
          both:
            cron: '@daily'
            rate: 1m
            command: [run]
            shell: run
          neither:
            timeout: 1m
        workers:
          idle:
            stop_grace: 1s
        """
    ) == [
        "c.yaml:6:5: error: schedules.both.rate: cannot be combined with 'cron'; "
        "keep one of the two",
        "c.yaml:8:5: error: schedules.both.shell: cannot be combined with 'command'; "
        "keep one of the two",
        "c.yaml:9:3: error: schedules.neither: neither 'command' nor 'shell' is given; "
        "add one of them",
        "c.yaml:9:3: error: schedules.neither: neither 'cron' nor 'rate' is given; add one of them",
        "c.yaml:12:3: error: workers.idle: neither 'command' nor 'shell' is given; add one of them",
    ]


def test_command_without_argv() -> None:
    assert errors("version: 1\nproject: demo\ncommands:\n  push:\n    timeout: 1m\n") == [
        "c.yaml:4:3: error: commands.push: missing required key 'command'; "
        "add the argv to run, e.g. command: [python, -m, app]"
    ]


def test_command_as_text_or_empty() -> None:
    assert errors(
        """
        version: 1
        project: demo
        schedules:
          a: {rate: 1m, command: echo hi}
          b: {rate: 1m, command: []}
        """
    ) == [
        "c.yaml:4:26: error: schedules.a.command: expected a list (the argv), found text "
        "('echo hi'); write e.g. [python, -m, app], or use 'shell' for a shell command line",
        "c.yaml:5:26: error: schedules.b.command: is empty; give at least the program to run, "
        "e.g. [python, -m, app]",
    ]


# --- workers -------------------------------------------------------------------------------


def test_worker_replica_rules() -> None:
    assert errors(
        """
        version: 1
        project: demo
        queues:
          jobs: {}
        workers:
          one:
            command: [run]
            singleton: true
            replicas: 2
          two:
            command: [run]
            queue: jobs
            singleton: true
            autoscale: {max: 3}
          three:
            command: [run]
            queue: jobs
            replicas: 2
            autoscale: {max: 3}
          four:
            command: [run]
            autoscale: {max: 3}
          five:
            command: [run]
            queue: jobs
            autoscale: {min: 4, max: 3}
          six:
            command: [run]
            queue: jobs
            autoscale: {min: 1}
        """
    ) == [
        "c.yaml:9:5: error: workers.one.replicas: is 2, but a singleton worker runs at most "
        "one process; set replicas to 1 or singleton to false",
        "c.yaml:14:5: error: workers.two.autoscale: max is 3, but a singleton worker runs at "
        "most one process; set max to 1 or singleton to false",
        "c.yaml:19:5: error: workers.three.autoscale: cannot be combined with 'replicas'; "
        "keep one of the two",
        "c.yaml:22:5: error: workers.four.autoscale: follows a queue's backlog, but the "
        "worker has no queue; set 'queue'",
        "c.yaml:26:17: error: workers.five.autoscale.min: 4 is greater than max (3); "
        "lower min or raise max",
        "c.yaml:30:5: error: workers.six.autoscale: missing required key 'max'; add it",
    ]


def test_singleton_with_one_replica_loads() -> None:
    loaded = loads(
        "version: 1\nproject: demo\nworkers:\n  one: {command: [run], singleton: true, "
        "replicas: 1}\n"
    )
    assert loaded.catalog.workers["one"].desired_replicas == 1


# --- queues --------------------------------------------------------------------------------


def test_queue_limits() -> None:
    assert errors(
        """
        version: 1
        project: demo
        queues:
          a: {visibility_timeout: 13h}
          b: {retention: 59s}
          c: {retention: 15d}
          d: {delay: 16m}
          e: {content_based_deduplication: true}
          f: {max_receive_count: 0}
          g: {max_receive_count: 1001}
          h: {max_receive_count: 2}
          h-dlq: {}
        """
    ) == [
        "c.yaml:4:7: error: queues.a.visibility_timeout: longer than 12h, the most SQS "
        "allows; lower it",
        "c.yaml:5:7: error: queues.b.retention: outside 60s..14d, the range SQS allows; "
        "pick a value in it",
        "c.yaml:6:7: error: queues.c.retention: outside 60s..14d, the range SQS allows; "
        "pick a value in it",
        "c.yaml:7:7: error: queues.d.delay: longer than 15m, the most SQS allows; lower it",
        "c.yaml:8:7: error: queues.e.content_based_deduplication: only FIFO queues "
        "deduplicate; set 'fifo: true' or remove this key",
        "c.yaml:9:26: error: queues.f.max_receive_count: must be at least 1, found 0; raise it",
        "c.yaml:10:26: error: queues.g.max_receive_count: must be at most 1000, found 1001; "
        "lower it",
        "c.yaml:12:3: error: queues.h-dlq: this name is taken by the dead-letter queue of "
        "'h'; rename it",
    ]


def test_queue_limits_at_their_bounds_load() -> None:
    loaded = loads(
        """
        version: 1
        project: demo
        queues:
          a: {visibility_timeout: 12h, retention: 60s, delay: 15m, max_receive_count: 1000}
          b: {retention: 14d, fifo: true, content_based_deduplication: true}
        """
    )
    assert set(loaded.catalog.queues) == {"a", "b"}


# --- params --------------------------------------------------------------------------------


def test_param_rules() -> None:
    assert errors(
        """
        version: 1
        project: demo
        commands:
          push:
            command: [run]
            params:
              a: {type: choice}
              b: {type: choice, choices: []}
              c: {type: int, default: abc}
              d: {required: true, default: x}
              e: {pattern: '[a-'}
              f: {type: choice, choices: [x, y], default: z}
              g: {type: int, min: 1, max: 5, default: 9}
              h: {type: int, max_length: 3}
              i: {type: string, max: 1}
              j: {type: string, choices: [x]}
              k: {type: strin}
              l: {max_length: 3, default: abcd}
              m: {type: int, min: 5, max: 1}
              n: {type: url, default: 'ftp://x'}
              o: {type: bool, default: maybe}
        """
    ) == [
        "c.yaml:7:11: error: commands.push.params.a.type: a choice param needs a non-empty "
        "'choices' list; add e.g. 'choices: [a, b]'",
        "c.yaml:8:25: error: commands.push.params.b.choices: a choice param needs a "
        "non-empty 'choices' list; add e.g. 'choices: [a, b]'",
        "c.yaml:9:22: error: commands.push.params.c.default: the default breaks the param's "
        "own rules (expected a whole number, got 'abc'); change it",
        "c.yaml:10:27: error: commands.push.params.d.default: a required param cannot have "
        "a default; remove one of the two",
        "c.yaml:11:11: error: commands.push.params.e.pattern: invalid regular expression "
        "(unterminated character set at position 0); fix it (Python re syntax)",
        "c.yaml:12:42: error: commands.push.params.f.default: the default breaks the "
        "param's own rules ('z' is not one of x, y); change it",
        "c.yaml:13:38: error: commands.push.params.g.default: the default breaks the "
        "param's own rules (must be at most 5); change it",
        "c.yaml:14:22: error: commands.push.params.h.max_length: only string and url params "
        "take it, this one is int; remove it",
        "c.yaml:15:25: error: commands.push.params.i.max: only int and float params take it, "
        "this one is string; remove it",
        "c.yaml:16:25: error: commands.push.params.j.choices: only choice params take "
        "choices, this one is string; remove it or set 'type: choice'",
        "c.yaml:17:17: error: commands.push.params.k.type: 'strin' is not one of string, "
        "int, float, bool, url, choice; did you mean 'string'?",
        "c.yaml:18:26: error: commands.push.params.l.default: the default breaks the "
        "param's own rules (longer than 3 characters (4)); change it",
        "c.yaml:19:22: error: commands.push.params.m.min: 5 is greater than max (1); "
        "lower min or raise max",
        "c.yaml:20:22: error: commands.push.params.n.default: the default breaks the "
        "param's own rules (not an http(s) URL: 'ftp://x'); change it",
        "c.yaml:21:23: error: commands.push.params.o.default: the default breaks the "
        "param's own rules (expected true or false, got 'maybe'); change it",
    ]


# --- memory, slash commands, notify targets ----------------------------------------------


def test_memory_above_the_pools() -> None:
    assert errors(
        """
        version: 1
        project: demo
        pools:
          small: {memory: 256MiB}
          open: {}
        defaults:
          pool: small
        schedules:
          a: {rate: 1m, command: [run], memory: 512MiB}
          b: {rate: 1m, command: [run], memory: 256MiB}
          c: {rate: 1m, command: [run], memory: 8GiB, pool: open}
        workers:
          w: {command: [run], memory: 1GiB}
        commands:
          c: {command: [run], memory: 257MiB, pool: small}
        """
    ) == [
        "c.yaml:9:41: error: schedules.a.memory: 512MiB is more than pool 'small' has "
        "(256MiB); lower it or grow the pool",
        "c.yaml:13:31: error: workers.w.memory: 1GiB is more than pool 'small' has "
        "(256MiB); lower it or grow the pool",
        "c.yaml:15:31: error: commands.c.memory: 257MiB is more than pool 'small' has "
        "(256MiB); lower it or grow the pool",
    ]


def test_default_memory_above_the_default_pool_is_reported_once() -> None:
    assert errors(
        """
        version: 1
        project: demo
        defaults:
          memory: 1GiB
          pool: small
        pools:
          small: {memory: 256MiB}
        schedules:
          a: {rate: 1m, command: [run]}
          b: {rate: 1m, command: [run]}
          c: {rate: 1m, command: [run], memory: 100MiB}
        """
    ) == [
        "c.yaml:4:11: error: defaults.memory: 1GiB is more than pool 'small' has (256MiB); "
        "lower it, grow the pool, or give the items in that pool their own memory"
    ]


def test_slash_conflicts() -> None:
    assert errors(
        """
        version: 1
        project: demo
        commands:
          a: {command: [run], slash: /jobdeck}
          b: {command: [run], slash: /go}
          c: {command: [run], slash: /go}
          d: {command: [run], slash: go}
          e: {command: [run], slash: /Go}
        """
    ) == [
        "c.yaml:4:30: error: commands.a.slash: /jobdeck is jobdeck's own command; pick another",
        "c.yaml:6:30: error: commands.c.slash: /go is already used by 'b'; pick another",
        "c.yaml:7:30: error: commands.d.slash: invalid slash command 'go'; write '/' and then "
        "lowercase letters, digits, '-' or '_', at most 32 characters, e.g. '/breaking'",
        "c.yaml:8:30: error: commands.e.slash: invalid slash command '/Go'; write '/' and then "
        "lowercase letters, digits, '-' or '_', at most 32 characters, e.g. '/breaking'",
    ]


WEBHOOK_HTTP = (
    "plain http would send alerts unencrypted; use https:// (http is accepted only for localhost)"
)


def test_notify_targets() -> None:
    assert errors(
        """
        version: 1
        project: demo
        defaults:
          notify:
            - webhook:http://hooks.example/x
            - webhook:http://localhost.evil.example/x
            - webhook:http://10.0.0.1/x
            - webhook:https://hooks.example/ok
            - webhook:http://localhost:8000/ok
            - webhook:http://127.0.0.2/ok
            - webhook:http://[::1]:9/ok
            - email:ops@example.com
            - 'slack:'
            - slack:#ok
        """
    ) == [
        "c.yaml:5:7: error: defaults.notify[0]: invalid webhook target "
        f"'webhook:http://hooks.example/x': {WEBHOOK_HTTP}",
        "c.yaml:6:7: error: defaults.notify[1]: invalid webhook target "
        f"'webhook:http://localhost.evil.example/x': {WEBHOOK_HTTP}",
        "c.yaml:7:7: error: defaults.notify[2]: invalid webhook target "
        f"'webhook:http://10.0.0.1/x': {WEBHOOK_HTTP}",
        "c.yaml:12:7: error: defaults.notify[7]: unknown notify target "
        "'email:ops@example.com'; write 'slack:#channel' or 'webhook:https://...'",
        "c.yaml:13:7: error: defaults.notify[8]: invalid Slack target 'slack:'; "
        "write 'slack:#channel-name'",
    ]


# --- schedules -----------------------------------------------------------------------------


def test_schedule_rules() -> None:
    assert errors(
        """
        version: 1
        project: demo
        schedules:
          fast: {rate: 500ms, command: [run]}
          zoned: {rate: 1m, timezone: UTC, command: [run]}
          forever: {rate: 1m, timeout: 0s, command: [run]}
          choosy: {rate: 1m, overlap: skipp, catchup: everything, command: [run]}
        """
    ) == [
        "c.yaml:4:10: error: schedules.fast.rate: shorter than 1s, the shortest rate; raise it",
        "c.yaml:5:21: error: schedules.zoned.timezone: has no effect on a rate, which counts "
        "elapsed time; remove it",
        "c.yaml:6:23: error: schedules.forever.timeout: must be greater than zero; e.g. 15m",
        "c.yaml:7:31: error: schedules.choosy.overlap: 'skipp' is not one of skip, buffer_one, "
        "cancel_other, allow; did you mean 'skip'?",
        "c.yaml:7:47: error: schedules.choosy.catchup: 'everything' is not one of none, "
        "latest, all; use one of: none, latest, all",
    ]


def test_wrong_types() -> None:
    assert errors(
        """
        version: 1
        project: demo
        schedules:
          a:
            rate: 1m
            command: [run, 5]
            enabled: yes
            retry: {launch: -1, failure: 1.5}
            cpus: 0
            description: 5
          b:
          c: []
        """
    ) == [
        "c.yaml:6:20: error: schedules.a.command[1]: expected text, found a number (5); quote it",
        "c.yaml:7:14: error: schedules.a.enabled: expected true or false, found text "
        "('yes'); write true or false",
        "c.yaml:8:21: error: schedules.a.retry.launch: must be at least 0, found -1; raise it",
        "c.yaml:8:34: error: schedules.a.retry.failure: expected a whole number, found a "
        "number (1.5); write e.g. 3",
        "c.yaml:9:11: error: schedules.a.cpus: must be greater than 0, found 0; raise it",
        "c.yaml:10:18: error: schedules.a.description: expected text, found a number (5); quote it",
        "c.yaml:11:3: error: schedules.b: is empty; give its keys, or remove it",
        "c.yaml:12:6: error: schedules.c: expected a mapping of keys, found a list; "
        "write 'key: value' lines under it",
    ]


def test_empty_section() -> None:
    assert errors("version: 1\nproject: demo\nworkers:\n") == [
        "c.yaml:3:1: error: workers: is empty; give its keys, or remove it"
    ]


# --- all at once -----------------------------------------------------------------------------


def test_many_errors_are_all_reported_in_file_order() -> None:
    assert errors(
        """
        version: 1
        project: Demo
        timezone: Mars/Olympus
        defaults:
          timout: 1h
        pools:
          batch: {memory: 1GiB}
        queues:
          jobs: {retention: 1s}
        schedules:
          nightly:
            cron: '0 0 31 2 *'
            command: [run]
            pool: bach
          hourly:
            rate: 1h
            cron: '@hourly'
            command: [run]
            memory: 2GiB
            pool: batch
        workers:
          Indexer:
            command: [run]
          reader:
            command: [run]
            queue: job
        commands:
          push:
            command: [run, '{title}']
            slash: /jobdeck
        """
    ) == [
        "c.yaml:2:10: error: project: invalid project name 'Demo'; use lowercase letters, "
        "digits and '-', starting with a letter, at most 32 characters",
        "c.yaml:3:11: error: timezone: unknown time zone 'Mars/Olympus'; "
        "write an IANA name such as 'Asia/Tokyo'",
        "c.yaml:5:3: error: defaults: unknown key 'timout'; did you mean 'timeout'?",
        "c.yaml:9:10: error: queues.jobs.retention: outside 60s..14d, the range SQS allows; "
        "pick a value in it",
        "c.yaml:12:11: error: schedules.nightly.cron: invalid cron expression '0 0 31 2 *': "
        "it never fires, because no month it names has day 31; check the day-of-month and "
        "month fields",
        "c.yaml:14:11: error: schedules.nightly.pool: unknown pool 'bach'; did you mean 'batch'?",
        "c.yaml:16:5: error: schedules.hourly.rate: cannot be combined with 'cron'; "
        "keep one of the two",
        "c.yaml:19:13: error: schedules.hourly.memory: 2GiB is more than pool 'batch' has "
        "(1GiB); lower it or grow the pool",
        "c.yaml:22:3: error: workers: invalid name 'Indexer'; use lowercase letters, digits "
        "and '-', starting with a letter, at most 63 characters",
        "c.yaml:26:12: error: workers.reader.queue: unknown queue 'job'; did you mean 'jobs'?",
        "c.yaml:29:20: error: commands.push.command[1]: placeholder {title} names no "
        "declared param; declare it under 'params:', or write '{{' for a literal brace",
        "c.yaml:30:12: error: commands.push.slash: /jobdeck is jobdeck's own command; pick another",
    ]


def test_errors_are_never_returned_with_a_catalog() -> None:
    # One bad key among good items: the whole load fails; nothing partial comes back.
    text = (
        "version: 1\nproject: demo\nschedules:\n  good: {rate: 1m, command: [run]}\n"
        "  bad: {rate: 1m, command: [run], pool: nowhere}\n"
    )
    with pytest.raises(CatalogError) as info:
        load_catalog_text(text, "c.yaml")
    assert [str(d) for d in info.value.diagnostics] == [
        "c.yaml:5:41: error: schedules.bad.pool: unknown pool 'nowhere'; "
        "declare it under 'pools:' (declared: none)"
    ]


def test_the_loaded_catalog_is_returned_when_valid() -> None:
    loaded = loads(schedule_with("rate: 1m"))
    assert loaded.path == "c.yaml"
    assert loaded.catalog.project == "demo"
    assert len(loaded.digest) == 64
