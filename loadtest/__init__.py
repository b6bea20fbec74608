"""Load testing gifting: gift storms, trace replays, reports, and the benchmark.

``python -m loadtest storm | replay | bench`` (see loadtest/README.md). The
reusable entry point is :func:`loadtest.storm.run_storm` with a
:class:`loadtest.config.StormConfig`; it returns a
:class:`loadtest.storm.StormResult`. Importing this package is cheap: the
modules load only what they use.
"""
