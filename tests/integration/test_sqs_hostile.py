"""Malformed and hostile requests to the SQS endpoint: each answered with a 4xx in SQS's
own error shape (JSON for the JSON protocol, XML for the query protocol), never a 500,
and the endpoint serves on. The hypothesis half sends thousands of generated requests
and checks that none that was refused changed the store."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobdeck.queues.shapes import operation_names
from jobdeck.store import open_store
from tests.integration.sqs_harness import SqsServer

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=jobdeck/x/us-east-1/sqs/aws4_request, "
    "SignedHeaders=host, Signature=0"
}
JSON_TYPE = "application/x-amz-json-1.0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    folder = tmp_path_factory.mktemp("hostile")
    started = SqsServer(f"sqlite:///{folder / 'store.db'}")
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def http(server: SqsServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.endpoint, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def queue_url(http: httpx.Client) -> str:
    answer = json_call(http, "CreateQueue", {"QueueName": "hostile-target"})
    assert answer.status_code == 200
    url = answer.json()["QueueUrl"]
    assert json_call(http, "SendMessage", {"QueueUrl": url, "MessageBody": "x"}).is_success
    return str(url)


def json_call(
    http: httpx.Client, action: str, body: Any, raw: bytes | None = None
) -> httpx.Response:
    return http.post(
        "/",
        content=raw if raw is not None else json.dumps(body).encode(),
        headers={**SIGNED, "X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": JSON_TYPE},
    )


def assert_json_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["__type"].endswith("#" + code)
    assert answer.headers["x-amzn-query-error"].startswith(code.replace("QueueDoesNotExist", ""))


def assert_xml_error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    root = ElementTree.fromstring(answer.content)
    assert root.tag == f"{{{NS['sqs']}}}ErrorResponse"
    return root.findtext("sqs:Error/sqs:Code", "", NS)


# -- each reported defect ----------------------------------------------------------------


def test_wrong_json_types_are_invalid_parameters(http: httpx.Client, queue_url: str) -> None:
    assert_json_error(
        json_call(http, "CreateQueue", {"QueueName": 5}), 400, "InvalidParameterValue"
    )
    assert_json_error(
        json_call(http, "GetQueueUrl", {"QueueName": ["a"]}), 400, "InvalidParameterValue"
    )
    assert_json_error(
        json_call(http, "SendMessage", {"QueueUrl": 1, "MessageBody": "x"}),
        400,
        "InvalidParameterValue",
    )
    assert_json_error(
        json_call(http, "ReceiveMessage", {"QueueUrl": queue_url, "AttributeNames": 5}),
        400,
        "InvalidParameterValue",
    )
    assert_json_error(
        json_call(http, "ListQueues", {"MaxResults": "many"}), 400, "InvalidParameterValue"
    )
    assert_json_error(json_call(http, "CreateQueue", [1, 2]), 400, "InvalidParameterValue")


def test_overflowing_numbers_are_invalid_parameters(http: httpx.Client, queue_url: str) -> None:
    raw = (f'{{"QueueUrl": "{queue_url}", "VisibilityTimeout": 1e400}}').encode()
    assert_json_error(json_call(http, "ReceiveMessage", None, raw), 400, "InvalidParameterValue")
    huge = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10**30}
    assert_json_error(json_call(http, "ReceiveMessage", huge), 400, "InvalidParameterValue")
    # Past what Python's json reads as a number: not JSON this endpoint takes.
    digits = "9" * 5000
    raw = f'{{"QueueUrl": "{queue_url}", "MaxNumberOfMessages": {digits}}}'.encode()
    assert_json_error(json_call(http, "ReceiveMessage", None, raw), 400, "SerializationException")
    answer = http.post(
        "/",
        data={"Action": "ListQueues", "MaxResults": "9" * 5000},
        headers=SIGNED,
    )
    assert assert_xml_error(answer, 400) == "InvalidParameterValue"


def test_deeply_nested_json_is_a_serialization_error(http: httpx.Client) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    assert_json_error(json_call(http, "ListQueues", None, raw), 400, "SerializationException")
    raw = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    assert_json_error(json_call(http, "ListQueues", None, raw), 400, "SerializationException")


def test_other_methods_are_refused_in_sqs_shape(http: httpx.Client) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        answer = http.request(method, "/000000000000/q", headers=SIGNED)
        assert assert_xml_error(answer, 405) == "MethodNotAllowed"
        answer = http.request(
            method, "/", headers={**SIGNED, "X-Amz-Target": "AmazonSQS.ListQueues"}
        )
        assert_json_error(answer, 405, "MethodNotAllowed")


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: SqsServer) -> None:
    """200 MB declared, a few bytes sent: the answer comes at once, without the rest."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
            b"Authorization: " + SIGNED["Authorization"].encode() + b"\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 209715200\r\n\r\n{}"
        )
        head = conn.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"RequestEntityTooLarge" in head

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1024 * 1024

    with httpx.Client(timeout=60) as client:
        streamed = client.post(server.endpoint + "/", content=chunks(), headers=SIGNED)
    assert assert_xml_error(streamed, 413) == "RequestEntityTooLarge"


# -- generated requests ------------------------------------------------------------------

ACTIONS = [*sorted(operation_names()), "", "Nope", "AmazonSQS.ListQueues"]
PARAMETER_NAMES = [
    "QueueUrl", "QueueName", "MessageBody", "Entries", "Attributes", "AttributeNames",
    "MessageAttributes", "MessageAttributeNames", "MaxNumberOfMessages", "VisibilityTimeout",
    "WaitTimeSeconds", "DelaySeconds", "ReceiptHandle", "Id", "MessageGroupId",
    "MessageDeduplicationId", "Tags", "TagKeys", "Label", "AWSAccountIds", "Actions",
    "SourceArn", "DestinationArn", "TaskHandle", "MaxResults", "NextToken", "tags",
]  # fmt: skip
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "'; DROP TABLE queues; --",
        "http://whatever-incorrect-queue-address",
        "../../etc/passwd",
        "9" * 400,
        "-1",
        "1e400",
        "NaN",
        "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
        "All",
        ".*",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    HOSTILE_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(PARAMETER_NAMES), st.text(max_size=8)), inner, max_size=4
        ),
    ),
    max_leaves=12,
)


def store_fingerprint(server: SqsServer) -> Any:
    store = open_store(server.store_url)
    try:
        with store.reading() as tx:
            queues = [
                (q.name, q.modified_ms, q.settings, tx.queues.queue_tags(q.name))
                for q in tx.queues.queues()
            ]
            counts = tx.queues.queue_counts(0)
            return queues, {name: tuple(c.__dict__.values()) for name, c in counts.items()}
    finally:
        store.close()


class Watch:
    """The store as it was after the last request that was not refused."""

    def __init__(self, server: SqsServer) -> None:
        self.server = server
        self.before = store_fingerprint(server)
        self.sent = 0

    def check(self, answer: httpx.Response, protocol: str) -> None:
        self.sent += 1
        assert answer.status_code < 500, answer.text
        if answer.status_code >= 400:
            if protocol == "json":
                assert "__type" in answer.json()
            else:
                assert_xml_error(answer, answer.status_code)
            # Only a sample: reading the store for every refusal would double the time.
            if self.sent % 10 == 0:
                assert store_fingerprint(self.server) == self.before
        else:
            self.before = store_fingerprint(self.server)


@pytest.fixture(scope="module")
def watch(server: SqsServer, queue_url: str) -> Watch:
    return Watch(server)


FUZZ = settings(
    max_examples=2500,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@FUZZ
@given(
    action=st.sampled_from(ACTIONS),
    params=st.dictionaries(st.sampled_from(PARAMETER_NAMES), VALUES, max_size=5),
    use_queue=st.booleans(),
    garbage=st.one_of(st.none(), st.binary(max_size=64)),
)
def test_generated_json_requests(
    http: httpx.Client,
    watch: Watch,
    queue_url: str,
    action: str,
    params: dict[str, Any],
    use_queue: bool,
    garbage: bytes | None,
) -> None:
    if use_queue:
        params["QueueUrl"] = queue_url
    if action == "PurgeQueue" or action == "DeleteQueue":
        params["QueueUrl"] = "http://x/000000000000/no-such-queue"  # keep the target
    raw = garbage if garbage is not None else json.dumps(params, allow_nan=True).encode()
    watch.check(json_call(http, action, None, raw), "json")


@FUZZ
@given(
    action=st.sampled_from(ACTIONS),
    form=st.dictionaries(
        st.one_of(
            st.sampled_from(PARAMETER_NAMES),
            st.from_regex(
                r"(Attribute|MessageAttribute|Tag|SendMessageBatchRequestEntry)\.[0-9]{1,25}\.(Name|Value|Key|Id|MessageBody|Value\.DataType|Value\.StringValue)",
                fullmatch=True,
            ),
            st.text(max_size=10),
        ),
        st.one_of(st.text(max_size=20), HOSTILE_TEXT),
        max_size=6,
    ),
    use_queue=st.booleans(),
    method=st.sampled_from(["POST", "POST", "GET", "PUT"]),
)
def test_generated_query_requests(
    http: httpx.Client,
    watch: Watch,
    queue_url: str,
    action: str,
    form: dict[str, str],
    use_queue: bool,
    method: str,
) -> None:
    form = {**form, "Action": action}
    if use_queue:
        form["QueueUrl"] = queue_url
    if action in ("PurgeQueue", "DeleteQueue"):
        form["QueueUrl"] = "http://x/000000000000/no-such-queue"
    if method == "GET":
        answer = http.get("/", params=form, headers=SIGNED)
    else:
        answer = http.request(method, "/", data=form, headers=SIGNED)
    watch.check(answer, "query")


def test_the_endpoint_serves_on_after_the_fuzzing(
    server: SqsServer, http: httpx.Client, queue_url: str, watch: Watch
) -> None:
    assert server.process is not None
    assert server.process.poll() is None
    assert (
        json_call(
            http, "GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": ["All"]}
        ).status_code
        == 200
    )
    assert watch.sent >= 4000
