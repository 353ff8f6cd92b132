"""SigV4 signatures verified by the endpoint: the workers' credentials and an operator's
file of further ones are served, in both protocols; a wrong secret, an unknown key, a
forged or stale signature, a body changed after signing and an unsigned request are
refused in SQS's own error shape."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from jobdeck.queues.sigv4 import CREDENTIALS_FILE_ENV, SECRET_ENV, WORKER_ACCESS_KEY_ID
from tests.integration.sqs_harness import REGION, SqsServer, error_of, unique

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

NS = {"sqs": "http://queue.amazonaws.com/doc/2012-11-05/"}
SECRET = "s3cret-for-the-workers"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    folder = tmp_path_factory.mktemp("sigv4")
    extra = folder / "credentials"
    extra.write_text(
        "# operators' keys\nAKIDOPERATOR:operator-secret\nAKIDPARTNER:partner-secret:111122223333\n"
    )
    started = SqsServer(
        f"sqlite:///{folder / 'store.db'}",
        args=("--verify-signatures",),
        env={SECRET_ENV: SECRET, CREDENTIALS_FILE_ENV: str(extra)},
    )
    started.start()
    try:
        yield started
    finally:
        started.stop()


def client(server: SqsServer, key_id: str, secret: str) -> SQSClient:
    return boto3.client(
        "sqs",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def signed_form(server: SqsServer, form: dict[str, str], secret: str) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(WORKER_ACCESS_KEY_ID, secret), "sqs", REGION).add_auth(request)
    return request


def send(request: AWSRequest, body: bytes | None = None) -> httpx.Response:
    prepared = request.prepare()
    content = body if body is not None else prepared.body
    assert isinstance(content, bytes | str)
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    return httpx.post(prepared.url, content=content, headers=headers)


def test_the_workers_and_an_operators_credentials_are_served(server: SqsServer) -> None:
    workers = client(server, WORKER_ACCESS_KEY_ID, SECRET)
    url = workers.create_queue(QueueName=unique())["QueueUrl"]
    operator = client(server, "AKIDOPERATOR", "operator-secret")
    operator.send_message(QueueUrl=url, MessageBody="signed")
    got = workers.receive_message(QueueUrl=url)["Messages"]
    assert [m["Body"] for m in got] == ["signed"]
    answer = send(signed_form(server, {"Action": "ListQueues"}, SECRET))
    assert answer.status_code == 200, answer.text


def test_wrong_credentials_are_refused(server: SqsServer) -> None:
    with pytest.raises(ClientError) as raised:
        client(server, WORKER_ACCESS_KEY_ID, "jobdeck-local").list_queues()
    assert error_of(raised)[0] == "SignatureDoesNotMatch"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as raised:
        client(server, "AKIDSTRANGER", SECRET).list_queues()
    assert error_of(raised)[0] == "InvalidClientTokenId"


def test_forged_stale_tampered_and_unsigned_requests_are_refused(server: SqsServer) -> None:
    form = {"Action": "CreateQueue", "QueueName": unique("forged")}
    forged = httpx.post(
        server.endpoint + "/",
        data=form,
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=jobdeck/20260101/us-east-1/sqs/"
            "aws4_request, SignedHeaders=host, Signature=" + "0" * 64,
            "X-Amz-Date": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        },
    )
    assert (forged.status_code, code(forged)) == (403, "SignatureDoesNotMatch")
    tampered = send(signed_form(server, form, SECRET), body=b"Action=DeleteQueue&QueueUrl=x")
    assert (tampered.status_code, code(tampered)) == (403, "SignatureDoesNotMatch")
    stale = signed_form(server, form, SECRET)
    stale.headers.replace_header("X-Amz-Date", "20200101T000000Z")
    answer = send(stale)
    assert (answer.status_code, code(answer)) == (403, "SignatureDoesNotMatch")
    unsigned = httpx.post(server.endpoint + "/", data=form)
    assert (unsigned.status_code, code(unsigned)) == (403, "MissingAuthenticationToken")
    json_unsigned = httpx.post(
        server.endpoint + "/",
        content=b"{}",
        headers={"X-Amz-Target": "AmazonSQS.ListQueues"},
    )
    assert json_unsigned.status_code == 403
    assert json_unsigned.json()["__type"].endswith("#MissingAuthenticationToken")
    # None of them created anything.
    names = client(server, WORKER_ACCESS_KEY_ID, SECRET).list_queues().get("QueueUrls", [])
    assert not any("forged" in n for n in names)


def test_another_accounts_key_gets_what_permissions_grant(server: SqsServer) -> None:
    owner = client(server, WORKER_ACCESS_KEY_ID, SECRET)
    partner = client(server, "AKIDPARTNER", "partner-secret")
    url = owner.create_queue(QueueName=unique("shared"))["QueueUrl"]
    owner.send_message(QueueUrl=url, MessageBody="owner's")

    def denied(call: Any) -> None:
        with pytest.raises(ClientError) as raised:
            call()
        assert error_of(raised)[0] == "AccessDenied"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    denied(lambda: partner.send_message(QueueUrl=url, MessageBody="partner's"))
    denied(lambda: partner.list_queues())
    denied(lambda: partner.create_queue(QueueName=unique("theirs")))
    owner.add_permission(
        QueueUrl=url,
        Label="partner-sends",
        AWSAccountIds=["111122223333"],
        Actions=["SendMessage", "GetQueueUrl"],
    )
    partner.send_message(QueueUrl=url, MessageBody="partner's")
    partner.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "batch"}])
    assert partner.get_queue_url(QueueName=url.rsplit("/", 1)[1])["QueueUrl"] == url
    denied(lambda: partner.receive_message(QueueUrl=url))
    denied(lambda: partner.purge_queue(QueueUrl=url))
    denied(lambda: partner.tag_queue(QueueUrl=url, Tags={"a": "b"}))
    got = owner.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["batch", "owner's", "partner's"]
    owner.remove_permission(QueueUrl=url, Label="partner-sends")
    denied(lambda: partner.send_message(QueueUrl=url, MessageBody="again"))


def code(answer: httpx.Response) -> str | None:
    return ElementTree.fromstring(answer.content).findtext("sqs:Error/sqs:Code", None, NS)


def test_the_worker_environment_carries_the_operators_secret(tmp_path: Path) -> None:
    from jobdeck.queues.catalog import worker_environment

    env = worker_environment("http://127.0.0.1:9324", "q", {SECRET_ENV: "abc"})
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("jobdeck", "abc")
    assert worker_environment("http://x", None, {})["AWS_SECRET_ACCESS_KEY"] == "jobdeck-local"
