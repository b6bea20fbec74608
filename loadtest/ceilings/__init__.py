"""Ceilings: what bare tools do on this machine, measured in the same run as gifting.

Each module holds one measurement, a plain synchronous function with a bounded
duration that returns a small frozen dataclass of figures (rate, latency where
it matters, CPU seconds of the server side and of the load generator side):

==========================  ==============================================  ===================
module                      function                                        figures
==========================  ==============================================  ===================
``echo``                    :func:`~loadtest.ceilings.echo.echo_ceiling`    ``EchoFigures``
``broadcast``               :func:`~.broadcast.broadcast_ceiling`           ``FanoutFigures``
``redis_spend``             :func:`~.redis_spend.redis_spend_ceiling`       ``RedisSpendFigures``
``pg_insert``               :func:`~.pg_insert.pg_insert_ceiling`           ``PgInsertFigures``
==========================  ==============================================  ===================

The load generators (picows clients in >= 2 processes) live in
:mod:`loadtest.ceilings.clients` and are public, so the benchmark drives
gifting's own server with the very same code (:func:`~.clients.measure_echo`,
:func:`~.clients.measure_fanout`).

Calling them. Every function is synchronous and blocks for about its
duration plus a few seconds of set-up; from async code call it through
``asyncio.to_thread`` (it never touches the caller's loop). Children are
started with ``multiprocessing``'s *spawn* method, so a script that calls
these must keep its top level under ``if __name__ == "__main__":`` (pytest
and ``python -m`` entry points already are). Private Redis / PostgreSQL
servers are started per measurement unless a URL is passed (the PostgreSQL
ones then work in a fresh database of their own, dropped afterwards).

This package imports nothing on purpose: generator processes are *spawned* and
import only the module of their entry point, which must stay light.
"""
