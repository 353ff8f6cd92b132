"""The older SQS query protocol: form-encoded ``Action=...`` requests, XML answers.

Requests are translated into the JSON shapes of :mod:`jobdeck.queues.service` and the
results back into SQS's XML, so that both protocols share every action.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

from starlette.requests import Request
from starlette.responses import Response

from jobdeck.queues.errors import SqsError, missing_parameter
from jobdeck.queues.wire import read_body

if TYPE_CHECKING:
    from jobdeck.queues.endpoint import SqsEndpoint

log = logging.getLogger(__name__)

# What XML 1.0 cannot carry, even escaped.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

XML_NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"

# Batch entry prefixes of the query protocol, by action.
_ENTRY_PREFIX = {
    "SendMessageBatch": "SendMessageBatchRequestEntry",
    "DeleteMessageBatch": "DeleteMessageBatchRequestEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchRequestEntry",
}
_RESULT_ENTRY = {
    "SendMessageBatch": "SendMessageBatchResultEntry",
    "DeleteMessageBatch": "DeleteMessageBatchResultEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchResultEntry",
}
_SCALARS = (
    "QueueName",
    "QueueUrl",
    "QueueOwnerAWSAccountId",
    "QueueNamePrefix",
    "MaxResults",
    "NextToken",
    "MessageBody",
    "DelaySeconds",
    "MessageGroupId",
    "MessageDeduplicationId",
    "MaxNumberOfMessages",
    "VisibilityTimeout",
    "WaitTimeSeconds",
    "ReceiveRequestAttemptId",
    "ReceiptHandle",
    "Id",
    "Label",
    "TaskHandle",
    "SourceArn",
    "DestinationArn",
    "MaxNumberOfMessagesPerSecond",
)
_INTEGERS = {
    "MaxResults",
    "DelaySeconds",
    "MaxNumberOfMessages",
    "VisibilityTimeout",
    "WaitTimeSeconds",
    "MaxNumberOfMessagesPerSecond",
}


async def handle(endpoint: SqsEndpoint, request: Request, request_id: str) -> Response:
    try:
        form: dict[str, str] = dict(request.query_params)
        raw = await read_body(request)
        if request.method == "POST":
            # SDKs send application/x-www-form-urlencoded; the standard library reads it.
            form.update(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
        account = endpoint.check_signature(request, raw)
        action = form.get("Action", "")
        params = parse(action, form)
        if "QueueUrl" not in params and request.url.path.strip("/"):
            params["QueueUrl"] = str(request.url)
        result = await endpoint.call(action, params, account)
    except SqsError as refused:
        return xml_error(refused, request_id)
    except Exception:
        log.exception("SQS request %s failed", request_id)
        return xml_error(SqsError("InternalFailure", "The request failed."), request_id)
    return Response(render(action, result, request_id), media_type="text/xml")


def parse(action: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The JSON-shaped parameters of a form-encoded request."""
    params = _entry(form, "")
    tags = {
        form[f"Tag.{n}.Key"]: form.get(f"Tag.{n}.Value", "")
        for n in _indexes(form, "Tag")
        if f"Tag.{n}.Key" in form
    }
    if tags:
        # CreateQueue's member is lower case in SQS's model; TagQueue's is not.
        params["tags" if action == "CreateQueue" else "Tags"] = tags
    prefix = _ENTRY_PREFIX.get(action)
    if prefix is not None:
        params["Entries"] = [_entry(form, f"{prefix}.{n}.") for n in _indexes(form, prefix)]
    return params


def _entry(form: Mapping[str, str], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _SCALARS:
        scalar = form.get(prefix + name)
        if scalar is not None:
            digits = scalar.removeprefix("-")
            numeric = (
                name in _INTEGERS and digits.isascii() and digits.isdigit() and len(digits) <= 18
            )
            out[name] = int(scalar) if numeric else scalar
    attributes = {
        _need(form, f"{prefix}Attribute.{n}.Name"): form.get(f"{prefix}Attribute.{n}.Value", "")
        for n in _indexes(form, prefix + "Attribute")
    }
    if attributes:
        out["Attributes"] = attributes
    for plural, single in (
        ("AttributeNames", "AttributeName"),
        ("MessageAttributeNames", "MessageAttributeName"),
        ("MessageSystemAttributeNames", "MessageSystemAttributeName"),
        ("TagKeys", "TagKey"),
        ("AWSAccountIds", "AWSAccountId"),
        ("Actions", "ActionName"),
    ):
        names = [_need(form, f"{prefix}{single}.{n}") for n in _indexes(form, prefix + single)]
        if names:
            out[plural] = names
    for plural, single in (
        ("MessageAttributes", "MessageAttribute"),
        ("MessageSystemAttributes", "MessageSystemAttribute"),
    ):
        values: dict[str, dict[str, str]] = {}
        for n in _indexes(form, prefix + single):
            base = f"{prefix}{single}.{n}."
            value = {
                key: form[base + "Value." + key]
                for key in ("DataType", "StringValue", "BinaryValue")
                if base + "Value." + key in form
            }
            values[_need(form, base + "Name")] = value
        if values:
            out[plural] = values
    return out


def _need(form: Mapping[str, str], key: str) -> str:
    """A member the numbering says is there; SQS's MissingParameter when it is not
    (``Attribute.01.Value`` without ``Attribute.1.Name``, say)."""
    value = form.get(key)
    if value is None:
        raise missing_parameter(key)
    return value


def _indexes(form: Mapping[str, str], stem: str) -> list[int]:
    """The N of every ``stem.N.`` (or ``stem.N``) key, in order."""
    found: set[int] = set()
    start = stem + "."
    for key in form:
        if key.startswith(start):
            head = key[len(start) :].split(".", 1)[0]
            if head.isascii() and head.isdigit() and len(head) <= 9:
                found.add(int(head))
    return sorted(found)


def render(action: str, result: Mapping[str, Any], request_id: str) -> bytes:
    root = ElementTree.Element(f"{action}Response", xmlns=XML_NAMESPACE)
    body = ElementTree.SubElement(root, f"{action}Result")
    if action in _RESULT_ENTRY:
        for entry in result.get("Successful", []):
            _fields(ElementTree.SubElement(body, _RESULT_ENTRY[action]), entry)
        for entry in result.get("Failed", []):
            _fields(ElementTree.SubElement(body, "BatchResultErrorEntry"), entry)
    elif action == "ReceiveMessage":
        for message in result.get("Messages", []):
            _message(ElementTree.SubElement(body, "Message"), message)
    else:
        for key, value in result.items():
            if key == "Attributes":
                _pairs(body, "Attribute", value)
            elif key == "Tags":
                _pairs(body, "Tag", value, "Key")
            elif key == "Results":
                for entry in value:
                    _fields(ElementTree.SubElement(body, f"{action}ResultEntry"), entry)
            elif key in ("QueueUrls", "queueUrls"):
                for url in value:
                    ElementTree.SubElement(body, "QueueUrl").text = url
            else:
                ElementTree.SubElement(body, key).text = str(value)
    if len(body) == 0 and not body.text:
        root.remove(body)
    metadata = ElementTree.SubElement(root, "ResponseMetadata")
    ElementTree.SubElement(metadata, "RequestId").text = request_id
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True))


def _fields(parent: ElementTree.Element, entry: Mapping[str, Any]) -> None:
    for key, value in entry.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        ElementTree.SubElement(parent, key).text = text


def _pairs(
    parent: ElementTree.Element, tag: str, values: Mapping[str, str], key: str = "Name"
) -> None:
    for name, value in values.items():
        pair = ElementTree.SubElement(parent, tag)
        ElementTree.SubElement(pair, key).text = name
        ElementTree.SubElement(pair, "Value").text = value


def _message(parent: ElementTree.Element, message: Mapping[str, Any]) -> None:
    for key in ("MessageId", "ReceiptHandle", "MD5OfBody", "Body", "MD5OfMessageAttributes"):
        if key in message:
            ElementTree.SubElement(parent, key).text = message[key]
    _pairs(parent, "Attribute", message.get("Attributes", {}))
    for name, value in message.get("MessageAttributes", {}).items():
        attribute = ElementTree.SubElement(parent, "MessageAttribute")
        ElementTree.SubElement(attribute, "Name").text = name
        holder = ElementTree.SubElement(attribute, "Value")
        for key in ("StringValue", "BinaryValue", "DataType"):
            if key in value:
                text = value[key]
                if isinstance(text, bytes):
                    text = base64.b64encode(text).decode()
                ElementTree.SubElement(holder, key).text = text


def xml_error(refused: SqsError, request_id: str) -> Response:
    root = ElementTree.Element("ErrorResponse", xmlns=XML_NAMESPACE)
    error = ElementTree.SubElement(root, "Error")
    ElementTree.SubElement(error, "Type").text = "Sender" if refused.sender_fault else "Receiver"
    ElementTree.SubElement(error, "Code").text = refused.query_code
    # The message may quote what the request sent: characters XML cannot carry are
    # replaced, so the answer stays well-formed.
    ElementTree.SubElement(error, "Message").text = _XML_INVALID.sub("\ufffd", refused.message)
    ElementTree.SubElement(error, "Detail")
    ElementTree.SubElement(root, "RequestId").text = request_id
    return Response(
        ElementTree.tostring(root, encoding="utf-8", xml_declaration=True),
        status_code=refused.status,
        media_type="text/xml",
    )
