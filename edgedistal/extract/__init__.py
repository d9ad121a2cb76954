"""Face extraction: sample video frames (:mod:`.video`), detect and crop faces (:mod:`.faces`),
turn a layout of videos into a manifest of face crops (:mod:`.run`). Above :mod:`edgedistal.data`."""
