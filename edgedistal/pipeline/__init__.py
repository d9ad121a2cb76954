"""The pipeline that drives the stages: distil (active or labelled), evaluate against baselines,
compare, report, and the end-to-end demo. Above :mod:`edgedistal.acquire`; may call
:mod:`edgedistal.deploy` (the demo exports); nothing below imports it."""
