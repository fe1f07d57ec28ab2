"""IAM denials in the protocol of the request (launcher fix 10; test infrastructure only).

With IAM enforced (INITIAL_NO_AUTH_ACTION_COUNT), moto answers a denied call with an XML
ErrorResponse whatever protocol the request spoke. An AWS JSON-protocol client (the Rust SDK's
SQS, Secrets Manager, ECS, ECR, Logs...) cannot parse that and loses the error code. AWS answers
those requests in JSON, with the code also in `x-amzn-query-error` for the services that keep
their query-protocol codes (SQS): we rewrite the XML to that.
"""

import html
import json
import re

from moto import settings

import rpcv2_cbor

_ERROR = re.compile(rb"<Code>(.*?)</Code>.*?<Message>(.*?)</Message>", re.S)


def wrap(app):
    def call(environ, start_response):
        content_type = environ.get("CONTENT_TYPE", "")
        enforced = settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf")
        if not enforced or not content_type.startswith("application/x-amz-json"):
            return app(environ, start_response)
        status, headers, answer = rpcv2_cbor.buffered(app, environ)
        match = _ERROR.search(answer) if status.startswith("403") else None
        if match and answer.lstrip().startswith(b"<"):
            code, message = match[1].decode(), html.unescape(match[2].decode())
            answer = json.dumps({"__type": code, "message": message}).encode()
            headers = [(k, v) for k, v in headers
                       if k.lower() not in ("content-type", "content-length")]
            headers += [("Content-Type", content_type), ("x-amzn-query-error", f"{code};Sender"),
                        ("Content-Length", str(len(answer)))]
        start_response(status, headers)
        return [answer]

    return call
