"""The typed outbox entries: every kind survives to_fields -> from_fields, as str or bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gifting.core.entries import (
    CashoutFailedEntry,
    CashoutHoldEntry,
    CashoutPaidEntry,
    CreditEntry,
    Entry,
    MalformedEntry,
    PurchaseEntry,
    RefundEntry,
    SpendArgs,
    SpendEntry,
    credit_of,
    from_fields,
    pairs,
)
from gifting.core.ids import credit_event_id, fingerprint

INT64 = 2**63 - 1
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~@+-/=!#$%&*^|"

ids = st.text(alphabet=_ID_CHARS, min_size=1, max_size=64)
# What can reach an entry: text a JSON or msgpack decoder produced (never a lone surrogate).
texts = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=200
)
ints = st.integers(-INT64, INT64)
positive = st.integers(1, INT64)
natural = st.integers(0, INT64)
currencies = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)


@st.composite
def spends(draw: st.DrawFn) -> SpendEntry:
    kind = draw(st.sampled_from(["gift", "effect", "highlight", "badge", "video"]))
    user = draw(ids)
    unit = draw(st.integers(1, 10**9))
    count = draw(st.integers(1, 10**9))
    video = ""
    if kind == "video":  # a gift on a video: a creator, no stream
        kind, stream, video = "gift", "", draw(ids)
        creator = draw(ids.filter(lambda c: c != user))
    elif kind == "badge":
        stream = creator = ""
    else:
        stream = draw(ids)
        creator = draw(ids.filter(lambda c: c != user))
    # A gift to a guest names the stream's host; a gift names its receiver's name.
    host = (
        draw(st.one_of(st.just(""), ids.filter(lambda h: h != creator))) if kind == "gift" else ""
    )
    return SpendEntry(
        user=user, name=draw(texts), client_id=draw(ids), kind=kind,
        item=draw(texts.filter(bool)), count=count, unit=unit, coins=unit * count,
        stream=stream, creator=creator, text=draw(texts), video=video, event=draw(ids),
        ts=draw(natural), balance=draw(ints), combo=draw(natural), host=host,
        receiver_name=draw(texts) if kind == "gift" else "",
    )  # fmt: skip


@st.composite
def credits(draw: st.DrawFn) -> CreditEntry:
    spend_event = draw(ids)
    video = draw(st.one_of(st.just(""), ids))  # a video gift's credit has no stream
    return CreditEntry(
        user=draw(ids), spend_event=spend_event, coins=draw(positive),
        stream="" if video else draw(ids), sender=draw(ids), video=video,
        diamonds=draw(natural), event=credit_event_id(spend_event), ts=draw(natural),
    )  # fmt: skip


purchases = st.builds(
    PurchaseEntry, user=ids, purchase_id=ids, package=texts.filter(bool), coins=positive,
    amount=natural, currency=currencies, event=ids, ts=natural, balance=ints,
)  # fmt: skip
refunds = st.builds(
    RefundEntry, user=ids, purchase_id=ids, coins=positive, event=ids, ts=natural, balance=ints
)
holds = st.builds(
    CashoutHoldEntry, user=ids, cashout=ids, diamonds=positive, amount=natural,
    currency=currencies, event=ids, ts=natural,
)  # fmt: skip
settlements = st.one_of(
    *(
        st.builds(cls, user=ids, cashout=ids, diamonds=positive, event=ids, ts=natural)
        for cls in (CashoutPaidEntry, CashoutFailedEntry)
    )
)

entries: st.SearchStrategy[Entry] = st.one_of(
    spends(), credits(), purchases, refunds, holds, settlements
)


@given(entries)
def test_every_entry_round_trips_through_its_fields(entry: Entry) -> None:
    fields = entry.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert next(iter(fields)) == "type" and fields["type"] == entry.type
    assert from_fields(fields) == entry
    assert type(entry).from_fields(fields) == entry


@given(entries)
def test_every_entry_round_trips_as_bytes_like_redis_returns_it(entry: Entry) -> None:
    raw = {k.encode(): v.encode() for k, v in entry.to_fields().items()}
    assert from_fields(raw) == entry


@given(spends())
def test_a_spend_entry_is_its_args_plus_what_the_script_appends(entry: SpendEntry) -> None:
    args = SpendArgs(
        user=entry.user, name=entry.name, client_id=entry.client_id, kind=entry.kind,
        item=entry.item, count=entry.count, unit=entry.unit, coins=entry.coins,
        stream=entry.stream, creator=entry.creator, text=entry.text, host=entry.host,
        receiver_name=entry.receiver_name, video=entry.video,
    )  # fmt: skip
    argv = pairs(args.to_fields())
    appended = ["event", entry.event, "ts", str(entry.ts), "balance", str(entry.balance),
                "combo", str(entry.combo)]  # fmt: skip
    if entry.lifetime:
        appended += ["lifetime", str(entry.lifetime)]
    flat = pairs(entry.to_fields())
    assert flat == argv + appended
    assert ("text" in argv) == bool(entry.text)
    assert ("video" in argv) == bool(entry.video)


@given(spends().filter(lambda s: bool(s.creator)), natural, natural)
def test_the_credit_of_a_spend_derives_from_it(spend: SpendEntry, diamonds: int, ts: int) -> None:
    args = credit_of(spend)
    fields = {
        **args.to_fields(), "diamonds": str(diamonds), "event": credit_event_id(spend.event),
        "ts": str(ts),
    }  # fmt: skip
    credit = CreditEntry.from_fields(fields)
    assert (credit.user, credit.sender, credit.coins) == (spend.creator, spend.user, spend.coins)
    assert credit.spend_event == spend.event


def test_a_class_parses_only_its_own_type() -> None:
    hold = CashoutHoldEntry(
        user="bob", cashout="co01-x", diamonds=2000, amount=1000, currency="USD", event="e1", ts=1
    )
    with pytest.raises(MalformedEntry, match="cashout_hold"):
        SpendEntry.from_fields(hold.to_fields())


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(MalformedEntry, match="UTF-8"):
        from_fields({b"type": b"\xff"})


def test_a_gift_to_a_guest_keeps_its_host_and_fingerprints_its_receiver() -> None:
    """The receiver is part of the payload: the same id to another guest is a conflict."""
    base = {
        "user": "alice", "name": "Alice", "client_id": "c1", "kind": "gift", "item": "rose",
        "count": 1, "unit": 1, "coins": 1, "stream": "s1",
    }  # fmt: skip
    to_host = SpendArgs(**base, creator="carol")
    to_bob = SpendArgs(**base, creator="bob", host="carol", receiver_name="Bob")
    to_dan = SpendArgs(**base, creator="dan", host="carol")
    assert to_host.stream_host == to_bob.stream_host == "carol"
    assert len({to_host.fingerprint(), to_bob.fingerprint(), to_dan.fingerprint()}) == 3
    # A gift to the host fingerprints as before guests (spend_ids kept in PostgreSQL agree).
    assert to_host.fingerprint() == fingerprint("gift", "rose", 1, "s1", "")
    assert to_bob.to_fields()["host"] == "carol"
    assert "host" not in to_host.to_fields()


def test_only_a_gift_to_someone_else_than_its_host_names_a_host() -> None:
    fields = {
        "type": "spend", "user": "alice", "name": "Alice", "client_id": "c1", "kind": "gift",
        "item": "rose", "count": "1", "unit": "1", "coins": "1", "stream": "s1",
        "creator": "bob", "event": "e1", "ts": "1", "balance": "0", "combo": "1",
    }  # fmt: skip
    assert SpendEntry.from_fields({**fields, "host": "carol"}).host == "carol"
    with pytest.raises(MalformedEntry, match="host"):
        from_fields({**fields, "host": "bob"})
    with pytest.raises(MalformedEntry, match="host"):
        from_fields({**fields, "kind": "effect", "host": "carol"})


def _video_gift(**change: str) -> dict[str, str]:
    entry = SpendEntry(
        user="sam", name="Sam", client_id="c1", kind="gift", item="rose", count=2, unit=1,
        coins=2, stream="", creator="vera", video="v1", event="e1", ts=1, balance=5, combo=0,
    )  # fmt: skip
    return {**entry.to_fields(), **change}


def test_a_video_gift_round_trips_and_its_credit_names_the_video() -> None:
    entry = SpendEntry.from_fields(_video_gift())
    assert (entry.video, entry.stream, entry.creator) == ("v1", "", "vera")
    credit = credit_of(entry)
    assert (credit.video, credit.stream) == ("v1", "")
    assert credit.to_fields()["video"] == "v1"
    assert (
        CreditEntry.from_fields(
            {**credit.to_fields(), "diamonds": "1", "event": credit_event_id("e1"), "ts": "1"}
        ).video
        == "v1"
    )
    plain = {k: v for k, v in _video_gift().items() if k != "video"}
    with pytest.raises(MalformedEntry):  # without its video: a gift needs a stream
        from_fields(plain)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"stream": "s1"}, "in no stream"),
        ({"kind": "effect", "item": "confetti"}, "only a gift"),
        ({"creator": "sam"}, "own video"),
        ({"creator": ""}, "creator"),
        ({"video": "bad:id"}, "video"),
        ({"kind": "badge", "creator": "", "item": "supporter"}, "badge"),
    ],
)
def test_a_malformed_video_gift_is_refused(change: dict[str, str], reason: str) -> None:
    with pytest.raises(MalformedEntry, match=reason):
        from_fields(_video_gift(**change))


def test_a_video_gift_and_a_stream_gift_never_share_a_fingerprint() -> None:
    args = {"user": "sam", "name": "Sam", "client_id": "c1", "kind": "gift", "item": "rose",
            "count": 1, "unit": 1, "coins": 1, "creator": "vera"}  # fmt: skip
    on_video = SpendArgs(**args, stream="", video="x")  # type: ignore[arg-type]
    in_stream = SpendArgs(**args, stream="x")  # type: ignore[arg-type]
    other_video = SpendArgs(**args, stream="", video="y")  # type: ignore[arg-type]
    prints = {on_video.fingerprint(), in_stream.fingerprint(), other_video.fingerprint()}
    assert len(prints) == 3
