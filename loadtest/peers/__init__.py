"""Peers: what users pick instead of gifting, measured with the same generators.

==================  =================================================  =================
module              function                                           figures
==================  =================================================  =================
``socketio_py``     :func:`~.socketio_py.socketio_py_fanout`           ``FanoutFigures``
``socketio_node``   :func:`~.socketio_node.socketio_node_fanout`       ``FanoutFigures``
``pg_debit``        :func:`~.pg_debit.pg_debit_peer`                   ``PgDebitFigures``
==================  =================================================  =================

Imports nothing on purpose (spawned generator processes import only what
their entry point needs).
"""
