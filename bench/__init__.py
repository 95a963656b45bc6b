"""Benchmarks: our server against the plain websockets bound, python-socketio and Django Channels.

Run with ``make bench`` or ``python -m bench``; see bench/README.md.
"""
