"""The event feed's pure rules: SSE messages, receiver URLs, kinds, the retry schedule."""

from __future__ import annotations

import pytest

from gifting.core.errors import BadRequest
from gifting.core.feed import backoff_s, check_kinds, check_url, sse_message


def test_sse_message_of_an_event_a_snapshot_and_an_error() -> None:
    frame = '{"op":"event","seq":3,"cursor":"1-0_3","kind":"gift","sender":{"kind":"x"}}'
    assert sse_message(frame) == f"id: 1-0_3\nevent: gift\ndata: {frame}\n\n".encode()
    snap = '{"op":"snapshot","cursor":null,"seq":0}'
    assert sse_message(snap).startswith(b"id: 0-0_0\nevent: snapshot\n")
    gone = '{"op":"snapshot","cursor":null,"seq":9}'  # history trimmed: no id to resume from
    assert sse_message(gone).startswith(b"event: snapshot\n")
    err = '{"op":"error","code":"cursor_expired","message":"m"}'
    assert sse_message(err) == f"event: error\ndata: {err}\n\n".encode()


@pytest.mark.parametrize(
    "url",
    ["ftp://h/x", "h/x", "http://", "http:///x", "javascript:alert(1)", "http://u:p@h/",
     "http://h/a b", "http://h/#f", "http://h:0/", "http://h:99999/", "http://" + "a" * 2048],
)  # fmt: skip
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(BadRequest):
        check_url(url)


def test_good_urls() -> None:
    for url in ["http://127.0.0.1:8080/hook", "https://example.com/a?b=c"]:
        assert check_url(url) == url


def test_kinds() -> None:
    assert check_kinds(["gift", "comment", "gift"]) == ["gift", "comment"]
    for bad in ([], ["nope"], ["gift", "GIFT"]):
        with pytest.raises(BadRequest):
            check_kinds(bad)


def test_backoff_doubles_is_capped_and_jittered_in_the_upper_half() -> None:
    assert [backoff_s(n, 10, 3600, lambda: 0.0) for n in (1, 2, 3)] == [5, 10, 20]
    assert [backoff_s(n, 10, 3600, lambda: 0.999999) for n in (1, 2)] == pytest.approx([10, 20])
    assert backoff_s(40, 10, 3600, lambda: 0.5) == 2700  # capped at 3600, jittered
    assert backoff_s(10_000, 10, 3600, lambda: 0.0) == 1800  # no overflow
