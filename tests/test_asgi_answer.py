"""overt._asgi.answer: what a server answers when a route fails (the log's, witness's, mirror's)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from overt._asgi import Message, Receive, Scope, Send, answer, reply
from overt.errors import OvertError


def _call(route: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/add", "method": "POST", "headers": []}
    asyncio.run(answer(scope, receive, send, route, "mirror"))
    return sent


def test_a_storage_failure_is_503_naming_the_server() -> None:
    async def route(scope: Scope, receive: Receive, send: Send, path: str, method: str) -> None:
        raise OvertError("disk full")

    start, body = _call(route)
    assert start["status"] == 503
    assert body["body"] == b"mirror unavailable: disk full\n"


def test_a_bug_is_500_closes_the_connection_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def route(scope: Scope, receive: Receive, send: Send, path: str, method: str) -> None:
        raise KeyError("oops")

    with caplog.at_level(logging.ERROR, "overt.http"):
        start, body = _call(route)
    assert start["status"] == 500 and (b"connection", b"close") in start["headers"]
    assert b"oops" not in body["body"]  # the details go to the log, not to the peer
    assert "bug: request POST '/add' failed" in caplog.text and "KeyError" in caplog.text


def test_nothing_is_sent_after_a_reply_has_started() -> None:
    async def route(scope: Scope, receive: Receive, send: Send, path: str, method: str) -> None:
        await reply(send, 200, b"ok")
        raise OvertError("failed after replying")

    sent = _call(route)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200


def test_a_route_that_answers_is_passed_path_and_method() -> None:
    async def route(scope: Scope, receive: Receive, send: Send, path: str, method: str) -> None:
        await reply(send, 201, f"{method} {path}".encode())

    start, body = _call(route)
    assert start["status"] == 201 and body["body"] == b"POST /add"
