"""Logs: one JSON object a line when asked, with the request's id; secrets never shown."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from gifting.app import create_app
from gifting.config import Settings
from gifting.logs import JsonFormatter, log_config, request_id


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gifting.hub", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_json_line_carries_the_message_the_request_and_the_extras() -> None:
    token = request_id.set("req-42")
    try:
        line = JsonFormatter().format(_record("spend %s failed", "e-1", event="e-1", stream="s1"))
    finally:
        request_id.reset(token)
    out = json.loads(line)
    assert out["msg"] == "spend e-1 failed"
    assert (out["level"], out["logger"]) == ("WARNING", "gifting.hub")
    assert (out["request"], out["event"], out["stream"]) == ("req-42", "e-1", "s1")
    assert out["ts"].endswith("Z")


def test_json_lines_is_an_option_of_the_log_config() -> None:
    plain, lines = log_config(), log_config(json_lines=True)
    assert "json" not in plain["formatters"]
    assert lines["formatters"]["json"]["()"] == "gifting.logs.JsonFormatter"
    assert {h["formatter"] for h in lines["handlers"].values()} == {"json"}
    assert all(h["filters"] == ["redact"] for h in lines["handlers"].values())


@pytest.mark.parametrize(
    ("given", "kept"), [("abc-123", True), ("", False), ("x" * 65, False), ("a b", False)]
)
async def test_every_http_answer_carries_its_request_id(given: str, kept: bool) -> None:
    app = create_app(Settings(GIFTING_DEV=True), extensions=[])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-Request-ID": given} if given else {}
        answer = await client.get("/healthz", headers=headers)
    rid = answer.headers["x-request-id"]
    assert (rid == given) is kept
    assert 1 <= len(rid) <= 64


async def test_code_serving_a_request_sees_its_id() -> None:
    """What a route logs is formatted while its request id is in context."""
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from gifting.state import Extension

    async def where(request: Request) -> PlainTextResponse:
        return PlainTextResponse(JsonFormatter().format(_record("seen")))

    app = create_app(
        Settings(GIFTING_DEV=True), extensions=[Extension("t", routes=[Route("/where", where)])]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/where", headers={"X-Request-ID": "trace-7"})
    assert json.loads(answer.text)["request"] == "trace-7"
    assert request_id.get() is None  # reset after the request
