"""Runs beside untrusted code, in the child process or the warm worker process.

Its hash (with ``tasks/`` and ``settings.py``) keys the cached reference records.
"""
