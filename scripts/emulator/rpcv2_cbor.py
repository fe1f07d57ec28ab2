"""CloudWatch over Smithy RPC v2 CBOR for moto (test infrastructure only).

The Rust SDK's CloudWatch client speaks the Smithy RPC v2 CBOR protocol: a POST to
/service/GraniteServiceVersion20100801/operation/<Operation> with a CBOR body. moto 5.2.1
answers CloudWatch's JSON 1.0 protocol but not CBOR, so `wsctl status` could not read alarms
or metrics from it. This WSGI wrapper turns such a request into the JSON one moto knows and
its JSON answer back into CBOR, timestamps as CBOR epoch tags (found from botocore's model of
CloudWatch, which moto already installs). Nothing else passes through it.
"""

import base64
import datetime
import io
import json
import re

import botocore.session
import cbor2

_PATH = re.compile(r"^/service/(?P<service>\w+)/operation/(?P<operation>\w+)$")
_SERVICE = "GraniteServiceVersion20100801"
_model = None


def _operation(name):
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("cloudwatch")
    return _model.operation_model(name)


def _to_json(value):
    """CBOR-decoded request values as JSON: datetimes to epoch seconds, bytes to base64."""
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def _timestamp(value):
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _to_cbor(value, shape):
    """moto's JSON answer shaped for CBOR: timestamp members become datetimes (tag 1)."""
    if shape is None or value is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _to_cbor(v, shape.members.get(k)) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_to_cbor(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _to_cbor(v, shape.value) for k, v in value.items()}
    if shape.type_name == "timestamp":
        return _timestamp(value)
    return value


def buffered(app, environ):
    """Calls the WSGI app and returns its whole answer: (status, headers, body)."""
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    chunks = app(environ, capture)
    try:
        answer = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return captured["status"], captured["headers"], answer


def wrap(app):
    """The moto WSGI app, answering CloudWatch's RPC v2 CBOR requests too."""

    def call(environ, start_response):
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if not match or match["service"] != _SERVICE:
            return app(environ, start_response)
        operation = match["operation"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        request = cbor2.loads(raw) if raw else {}
        body = json.dumps(_to_json(request)).encode()
        environ = dict(environ)
        environ.update({
            "PATH_INFO": "/",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"{_SERVICE}.{operation}",
            "wsgi.input": io.BytesIO(body),
        })
        status, headers, answer = buffered(app, environ)
        document = json.loads(answer) if answer.strip() else {}
        if status.startswith("2"):
            document = _to_cbor(document, _operation(operation).output_shape)
        elif "__type" not in document:
            document["__type"] = document.get("code", "InternalFailure")
        payload = cbor2.dumps(document, datetime_as_timestamp=True, timezone=datetime.timezone.utc)
        headers = [(k, v) for k, v in headers
                   if k.lower() not in ("content-type", "content-length")]
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
                    ("Content-Length", str(len(payload)))]
        start_response(status, headers)
        return [payload]

    return call
