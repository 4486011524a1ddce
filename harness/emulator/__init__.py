"""An emulator of the Losant REST API: the embedded default target of the harness.

Raw ASGI on uvicorn (``app.py``), SQLite with group commit (``store.py``), the documented
throttles as data (``throttle.py`` over ``harness.limits``), Losant's auth rules
(``auth.py``, ``scopes.py``). Start it with ``python -m harness.emulator`` or from Python
with ``process.EmulatorProcess`` / ``process.start_in_thread`` / ``app.create_app``.
Choices the documents leave open are listed in ``docs/LIMITS.md``.
"""
