"""The README's examples, run as written against a real server in dev mode.

Each ```python block of clients/python/README.md that starts with
``# example: <name>`` is a whole script; it runs in a thread (it calls
``asyncio.run``) with ``GIFTING_URL`` pointing at the test server. An
example that raises fails its test, so the README cannot rot.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.hub.conftest import HubServer

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"```python\n(# example: (\w+)\n.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    """The README's example scripts by name."""
    return {m[2]: m[1] for m in _BLOCK.finditer(README.read_text())}


def test_the_readme_has_an_example_for_each_user() -> None:
    assert set(examples()) == {"viewer", "creator", "integrator"}


async def run_example(
    name: str,
    server: HubServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    monkeypatch.setenv("GIFTING_URL", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("GIFTING_WEBHOOK_SECRET", server.state.settings.webhook_secret)
    code = compile(examples()[name], f"README.md:{name}", "exec")
    await asyncio.wait_for(asyncio.to_thread(exec, code, {"__name__": "__main__"}), 60)
    return capsys.readouterr().out


async def test_viewer_example(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = await run_example("viewer", server, monkeypatch, capsys)
    assert "bought 700 coins" in out and "combo 5" in out
    wallet = await server.state.ledger.wallet("alice")
    assert wallet.coins == 700 + 350 - 5


async def test_creator_example(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = await run_example("creator", server, monkeypatch, capsys)
    assert "Trevor sent 1 Sports Car" in out and "comment: something rude" in out
    assert "trevor is blocked" in out and "cash-out cancelled" in out


async def test_integrator_example(
    server: HubServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = await run_example("integrator", server, monkeypatch, capsys)
    assert "delivered: gift" in out
