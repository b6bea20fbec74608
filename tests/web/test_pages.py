"""The pages over plain HTTP: what is served in production and in dev mode, and how."""

from __future__ import annotations

import re
from importlib import resources

import httpx

from tests.web.conftest import serve_web

STATIC = resources.files("gifting").joinpath("static")


async def test_production_serves_a_notice_and_no_dev_routes(
    redis_url: str, database_url: str, key_prefix: str
) -> None:
    async with (
        serve_web(redis_url, database_url, key_prefix, dev=False) as site,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}") as http,
    ):
        index = await http.get("/")
        assert index.status_code == 200
        assert "development mode" in index.text and "demo.js" not in index.text
        assert (await http.post("/v1/dev/token", json={"user": "x"})).status_code in (404, 405)
        stream, key = await site.stream()
        overlay = await http.get(f"/overlay/{stream}", params={"key": key})
        assert overlay.status_code == 200 and "/static/overlay.js" in overlay.text
        assert overlay.headers["referrer-policy"] == "no-referrer"
        csp = overlay.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert (await http.get("/overlay/bad{id}")).status_code == 404
        js = await http.get("/static/overlay.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert js.headers["cache-control"] == "no-cache"
        assert (await http.get("/static/nope.js")).status_code == 404


async def test_dev_mode_serves_the_demo(redis_url: str, database_url: str, key_prefix: str) -> None:
    async with (
        serve_web(redis_url, database_url, key_prefix, dev=True) as site,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.port}") as http,
    ):
        index = await http.get("/")
        assert "/static/demo.js" in index.text
        assert "frame-src 'self'" in index.headers["content-security-policy"]


def test_assets_load_nothing_from_elsewhere() -> None:
    """No URL to another host in any shipped page, script or style (no CDN, no web font)."""
    outside = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)
    for entry in STATIC.iterdir():
        if entry.name.endswith((".html", ".js", ".css")):
            text = entry.read_text(encoding="utf-8")
            assert not outside.findall(text), f"{entry.name} names another host"
            assert "innerHTML" not in text, f"{entry.name} uses innerHTML"
