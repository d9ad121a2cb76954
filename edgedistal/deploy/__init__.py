"""Builders of deployable artifacts: ONNX export (:mod:`.export`), INT8 quantisation
(:mod:`.int8`) and TensorRT engines (:mod:`.engines`). They write what
:mod:`edgedistal.runtime.artifacts` reads; the runtime never imports this package."""
