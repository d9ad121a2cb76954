"""Latency benchmarks: timing (:mod:`.run`), the machine record (:mod:`.env`), the Jetson
profile and FLOP estimate (:mod:`.jetson`), tables and HTML (:mod:`.report`, :mod:`.html`).
Above :mod:`edgedistal.runtime`; ``jetson`` never imports ``run``."""
