"""Property-based tests of the HTTP API from its own document, with schemathesis.

A real uvicorn (every default extension, dev routes on) serves the app on a
free port, on the session's Redis and PostgreSQL; schemathesis reads its
``/openapi.json`` and, for every operation, sends generated requests, valid
and invalid, checking each answer: no 5xx, a documented status, the
documented content type, headers and body schema, invalid data refused.

Credentials come from an auth provider (:class:`_Credentials`): a creator's
bearer token, or for a provider webhook the signature of the very bytes
sent, so the signed routes are reached with their bodies, and schemathesis's
own probes check that taking the credentials away gives 401. Every other
valid case gets real ids (:class:`_Seeds`: the creator's streams, a comment
in each to hide, held cash-outs, webhook subscriptions), so it gets past
404 to the operation's real work. An event stream (SSE) is read up to its
first message, then closed. Limits: no stateful links; "schema-valid
request rejected" is not checked (see :data:`EXCLUDED`). Bounded
(``MAX_EXAMPLES`` per operation and mode, derandomized): about 20 s here.

The operations are parametrized by hand from the document rather than with
``schemathesis.pytest.from_fixture``, whose lazy loading fails under pytest 9
(it sets ``Function._nodeid``).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
import websockets.sync.client
from api_support import JWT_SECRET, WEBHOOK_SECRET, settings_for
from hypothesis import HealthCheck, given, settings
from redis import Redis
from schemathesis import GenerationMode, checks
from schemathesis.core import NotSet

from gifting.api.openapi import build_document
from gifting.api.signatures import SIGNATURE_HEADER, sign
from gifting.app import create_app
from gifting.auth import mint_token
from tests.hub.conftest import free_port

#: Requests per operation and mode; ``GIFTING_SCHEMATHESIS_EXAMPLES=500`` for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("GIFTING_SCHEMATHESIS_EXAMPLES", "25"))
#: "Schema-valid request rejected" (ST202) is left out: some valid-looking
#: requests are refused by design with 400, e.g. a cash-out under the
#: catalog's minimum, or ``5.0`` where an integer is due (JSON Schema counts
#: it as an integer; the API wants integers written as integers).
EXCLUDED = [checks.positive_data_acceptance]


class _Server:
    """uvicorn on a free port in a thread of its own (schemathesis calls block)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def served(redis_url: str, database_url: str) -> Iterator[str]:
    """The base URL of the whole app on uvicorn; its Redis keys are deleted afterwards."""
    prefix = f"s{secrets.token_hex(4)}"
    app = create_app(settings_for(redis_url, database_url, prefix, GIFTING_DEV=True))
    try:
        with _Server(app) as server:
            yield f"http://127.0.0.1:{server.port}"
    finally:
        client = Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for key in keys:
            client.delete(key)
        client.close()


class _Credentials:
    """Schemathesis's auth provider: a creator's bearer token, or a webhook's signature.

    Set on each generated case (so schemathesis knows the credentials are real
    and its auth probes can take them away); a webhook signs the exact bytes
    :func:`_send` sends.
    """

    def get(self, case: Any, context: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        if case.path.startswith("/v1/webhooks/"):
            case.headers[SIGNATURE_HEADER] = sign(WEBHOOK_SECRET, _encoded(case.body))
        else:
            case.headers["Authorization"] = f"Bearer {data}"


def _encoded(body: Any) -> bytes:
    """The bytes sent for a generated body (negative cases may hold raw bytes)."""
    if body is None or isinstance(body, NotSet):
        return b""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@dataclass
class _Seeds:
    """Real ids on the served app, swapped into every other valid case so that
    operations get past "no such stream" and "unknown item" to their real work."""

    streams: list[str]
    purchases: list[str]
    items: dict[str, list[Any]]  # body field -> real values (packages: with their price)
    comments: dict[str, str]  # stream -> a comment event in it
    cashouts: list[str]  # held cash-outs of the creator
    subscriptions: list[str]  # webhook subscriptions: the last one for DELETE
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def apply(self, case: Any) -> None:
        n = next(self.turn)
        if n % 2:
            return
        params = case.path_parameters or {}
        if "stream" in params:
            params["stream"] = self.streams[n // 2 % len(self.streams)]
            if "event" in params:
                params["event"] = self.comments[params["stream"]]
        if "cashout" in params:
            params["cashout"] = self.cashouts[n // 2 % len(self.cashouts)]
        if "id" in params and case.path.startswith("/v1/webhook-subscriptions/"):
            last = case.method.upper() == "DELETE"
            params["id"] = self.subscriptions[-1 if last else 0]
        if not isinstance(case.body, dict):
            return
        for name, values in self.items.items():
            if name in case.body:
                value = values[n // 2 % len(values)]
                case.body.update(value if isinstance(value, dict) else {name: value})
        if "purchase_id" in case.body and case.path.endswith("/refunds"):
            case.body["purchase_id"] = self.purchases[n // 2 % len(self.purchases)]


VIEWER = "sch-viewer"


def _viewer(served: str, stream: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``messages`` as the viewer over the WebSocket; their acks, in order."""
    url = served.replace("http://", "ws://") + f"/v1/ws/viewer?stream={stream}"
    token = mint_token(JWT_SECRET, VIEWER, "Viewer", [], 3600)
    acks = []
    with websockets.sync.client.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
    ) as ws:
        for message in messages:
            ws.send(json.dumps(message))
            while True:
                frame = json.loads(ws.recv(timeout=10))
                if frame.get("id") == message["id"]:
                    assert frame["op"] == "ack", frame
                    acks.append(frame)
                    break
    return acks


def _purchase(http: requests.Session, served: str, purchase_id: str, user: str,
              package: dict[str, Any]) -> None:  # fmt: skip
    body = json.dumps(
        {"purchase_id": purchase_id, "user": user, "package": package["id"], **package["price"]}
    ).encode()
    r = http.post(
        f"{served}/v1/webhooks/purchases",
        data=body,
        headers={SIGNATURE_HEADER: sign(WEBHOOK_SECRET, body)},
    )
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def seeds(served: str) -> _Seeds:
    """Coins for the test user, three live streams with a comment each, two purchases,
    two held cash-outs, two webhook subscriptions, the catalog's ids."""
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        catalog = http.get(f"{served}/v1/catalog").json()
        purchases = []
        for i, package in enumerate(catalog["packages"][-2:]):
            _purchase(http, served, f"seed-{i}", "sch-creator", package)
            purchases.append(f"seed-{i}")
        streams = []
        for i in range(3):
            r = http.post(f"{served}/v1/streams", json={"title": f"seed {i}"})
            assert r.status_code == 201, r.text
            streams.append(r.json()["stream"])
        # Diamonds for two cash-outs (a viewer's gift), and a comment in each stream.
        package = max(catalog["packages"], key=lambda p: p["coins"])
        _purchase(http, served, "seed-viewer", VIEWER, package)
        affordable = [g for g in catalog["gifts"] if g["coins"] <= package["coins"]]
        gift = max(affordable, key=lambda g: g["coins"])["id"]
        comments = {}
        for i, stream in enumerate(streams):
            gifts = [{"op": "gift", "id": "g", "gift": gift, "count": 1}] if i == 0 else []
            acks = _viewer(served, stream, [*gifts, {"op": "comment", "id": "c", "text": "hi"}])
            comments[stream] = acks[-1]["event"]
        cashouts = []
        for i in range(2):
            body = {"diamonds": catalog["cashout_min_diamonds"], "id": f"seed-{i}"}
            r = http.post(f"{served}/v1/cashouts", json=body)
            assert r.status_code == 201, r.text
            cashouts.append(r.json()["cashout"])
        subscriptions = []
        for _ in range(2):
            body = {"url": "http://127.0.0.1:9/hook", "kinds": ["gift"]}
            r = http.post(f"{served}/v1/webhook-subscriptions", json=body)
            assert r.status_code == 201, r.text
            subscriptions.append(r.json()["id"])
    packages = [{"package": p["id"], **p["price"]} for p in catalog["packages"]]
    items = {
        "badge": [b["id"] for b in catalog["badges"]],
        "gift": [g["id"] for g in catalog["gifts"]],
        "package": packages,
        "stream": streams,
        "url": ["http://127.0.0.1:9/hook"],
        "kinds": [["gift", "comment"]],
    }
    return _Seeds(streams, purchases, items, comments, cashouts, subscriptions)  # fmt: skip


@pytest.fixture(scope="module")
def api_schema(served: str) -> Any:
    """The server's own document, as schemathesis reads it, with our credentials."""
    loaded = schemathesis.openapi.from_url(f"{served}/openapi.json")
    loaded.auth()(_Credentials)
    return loaded


def _operations() -> list[Any]:
    """(method, path, mode) of every documented operation of the app the fixture serves:
    valid requests, and invalid ones where the operation takes any input."""
    app = create_app(settings_for("redis://unused", "postgresql://unused", "t", GIFTING_DEV=True))
    paths = build_document(app.routes)["paths"]
    cases = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            cases.append(
                pytest.param(
                    method.upper(),
                    path,
                    GenerationMode.POSITIVE,
                    id=f"{method.upper()} {path} valid",
                )
            )
            if "parameters" in operation or "requestBody" in operation:
                cases.append(
                    pytest.param(
                        method.upper(),
                        path,
                        GenerationMode.NEGATIVE,
                        id=f"{method.upper()} {path} invalid",
                    )
                )
    return cases


TOKEN = mint_token(JWT_SECRET, "sch-creator", "Sch", ["creator"], 3600)


def _send(case: Any, session: requests.Session, seeds: _Seeds | None) -> None:
    """Send ``case`` (its JSON body as :func:`_encoded` gives it) and check the answer.

    ``seeds``: swap real ids into the case first (valid cases only: a swap
    could make an invalid case valid).
    """
    if seeds is not None:
        seeds.apply(case)
        if SIGNATURE_HEADER in case.headers:  # the body may have changed: sign it again
            case.headers[SIGNATURE_HEADER] = sign(WEBHOOK_SECRET, _encoded(case.body))
    kwargs: dict[str, Any] = case.as_transport_kwargs()
    if "json" in kwargs:
        kwargs["data"] = _encoded(kwargs.pop("json"))
    response = session.request(**kwargs, timeout=(10, 10), stream=True)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        _first_message(response)
    case.validate_response(response, excluded_checks=EXCLUDED)


def _first_message(response: requests.Response) -> None:
    """Keep an event stream's first message as its body and close it (a live one never ends)."""
    received = b""
    try:
        for chunk in response.iter_content(chunk_size=None):
            received += chunk
            if b"\n\n" in received:
                break
    finally:
        response.close()
    response._content = received.partition(b"\n\n")[0] + b"\n\n" if received else b""
    response._content_consumed = True


@pytest.mark.parametrize(("method", "path", "mode"), _operations())
def test_the_api_keeps_its_document(
    api_schema: Any, seeds: _Seeds, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    session = requests.Session()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        _send(case, session, seeds if mode == GenerationMode.POSITIVE else None)

    check()
