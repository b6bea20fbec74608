"""Write ``sample_storm.jsonl``: a deterministic 30-second gift storm in three rooms.

    python loadtest/traces/make_sample.py [OUT]

Its shape follows what a TikTok LIVE gift storm looks like:

* most gifts are cheap streakable ones (Rose, TikTok, Finger Heart...) sent
  in combos: a viewer taps the same gift 2-40 times, 120-400 ms apart;
* some single mid-priced gifts (Rosa, Perfume, Doughnut, Hand Hearts, Corgi);
* a few big gifts (Galaxy, Whale Diving, Lion, Universe) from a few "whales";
* a burst: from 12 s to 18 s the creator of r1 asks for gifts, and its
  viewers start combos twelve times as often;
* about 1% of gifts re-sent with the same id a little later (a client retry:
  it must get the original ack and debit nothing);
* four senders funded with only 70 coins (``funds`` in the header; they send
  gifts worth 3 to 50 times that): their later gifts are refused for
  insufficient funds.

The same script always writes the same file (fixed seed).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 2025
DURATION_MS = 30_000
ROOMS = {"r1": 200, "r2": 80, "r3": 40}  # senders per room
BURST = ("r1", 12_000, 18_000, 12.0)  # room, from, to, factor
COMBO_GIFTS = [("rose", 70), ("tiktok", 8), ("gg", 6), ("ice_cream_cone", 6), ("finger_heart", 10)]
SINGLE_GIFTS = [
    "rosa",
    "perfume",
    "doughnut",
    "cap",
    "hand_hearts",
    "sunglasses",
    "corgi",
    "money_gun",
]
BIG_GIFTS = [("galaxy", 5), ("whale_diving", 3), ("sports_car", 2), ("lion", 1), ("universe", 1)]
#: The default catalog's prices of the gifts above (to pick who runs out of coins).
PRICES = {
    "rose": 1,
    "tiktok": 1,
    "gg": 1,
    "ice_cream_cone": 1,
    "finger_heart": 5,
    "rosa": 10,
    "perfume": 20,
    "doughnut": 30,
    "cap": 99,
    "hand_hearts": 100,
    "sunglasses": 199,
    "corgi": 299,
    "money_gun": 500,
    "galaxy": 1000,
    "whale_diving": 2150,
    "sports_car": 7000,
    "lion": 29999,
    "universe": 34999,
}
BROKE_COINS = 70


def _starts_per_s(room: str, t: int) -> float:
    """How often one sender starts something (a combo or a gift), per second."""
    base = 0.08
    name, start, end, factor = BURST
    return base * factor if room == name and start <= t < end else base


def build(rng: random.Random) -> list[dict[str, object]]:
    """Every gift of the sample, in time order."""
    events: list[dict[str, object]] = []
    for room_no, (room, n) in enumerate(ROOMS.items(), start=1):
        whales = {f"s{room_no}-{i}" for i in rng.sample(range(1, n + 1), 2)}
        for i in range(1, n + 1):
            sender = f"s{room_no}-{i}"
            k = 0
            t = rng.expovariate(_starts_per_s(room, 0) / 1000)
            while t < DURATION_MS:
                roll = rng.random()
                if sender in whales and roll < 0.3:
                    gift = rng.choices([g for g, _ in BIG_GIFTS], [w for _, w in BIG_GIFTS])[0]
                    shots = [(t, gift, 1)]
                elif roll < 0.8:
                    gift = rng.choices([g for g, _ in COMBO_GIFTS], [w for _, w in COMBO_GIFTS])[0]
                    taps = min(30, int(rng.paretovariate(1.3)) + 1)
                    shots, at = [], t
                    for _ in range(taps):
                        shots.append(
                            (at, gift, rng.choice((1, 1, 1, 1, 5)) if gift == "rose" else 1)
                        )
                        at += rng.uniform(120, 400)
                else:
                    shots = [(t, rng.choice(SINGLE_GIFTS), 1)]
                for at, gift, count in shots:
                    if at >= DURATION_MS:
                        break
                    k += 1
                    event = {
                        "t_ms": round(at),
                        "room": room,
                        "sender": sender,
                        "gift": gift,
                        "count": count,
                        "id": f"{sender}-{k}",
                    }
                    events.append(event)
                    if rng.random() < 0.01:  # a client retry of the same id
                        events.append({**event, "t_ms": round(at + rng.uniform(200, 800))})
                last = shots[-1][0]
                t = last + rng.expovariate(_starts_per_s(room, round(last)) / 1000)
    events.sort(key=lambda e: (e["t_ms"], e["sender"], e["id"]))
    return events


def broke_senders(events: list[dict[str, object]], n: int = 4) -> list[str]:
    """The ``n`` senders whose gifts cost the most between 3x and 50x what they get."""
    spend: dict[str, int] = {}
    for e in events:
        sender = str(e["sender"])
        spend[sender] = spend.get(sender, 0) + PRICES[str(e["gift"])] * int(str(e["count"]))
    fitting = [s for s, c in spend.items() if 3 * BROKE_COINS <= c <= 50 * BROKE_COINS]
    return sorted(fitting, key=lambda s: (-spend[s], s))[:n]


def main() -> None:
    """Write the trace (default: next to this script)."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("sample_storm.jsonl")
    events = build(random.Random(SEED))
    header = {
        "format": "gifting-trace",
        "version": 1,
        "description": "sample storm: 3 rooms, 320 senders, combos of cheap gifts, a few big "
        "ones, a 12x burst in r1 from 12 s to 18 s, 1% retries, 4 senders with 70 coins",
        "duration_ms": DURATION_MS,
        "rooms": list(ROOMS),
        "funds": dict.fromkeys(broke_senders(events), BROKE_COINS),
        "generator": "loadtest/traces/make_sample.py",
    }
    with open(out, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    print(f"wrote {len(events)} gifts to {out}")


if __name__ == "__main__":
    main()
