"""Async client library for the gifting server (viewers and overlays)."""
