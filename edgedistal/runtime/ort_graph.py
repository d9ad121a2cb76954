"""Which kernels ONNX Runtime really runs: integer vs float nodes of the *optimised* graph.

A QDQ model only pays on CPU if ORT fuses its ``DequantizeLinear → op → QuantizeLinear``
groups into integer kernels; unfused pairs run as float ops plus conversions. The only honest
way to know is to let ORT optimise the model, save that graph
(``SessionOptions.optimized_model_filepath``) and count its nodes — what the bench reports.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

#: Nodes that compute in integer arithmetic (ONNX + com.microsoft contrib ops).
INTEGER_OPS = frozenset({
    "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearConcat", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere", "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul", "QAttention", "NhwcQLinearConv", "QLinearConvTranspose", "QLinearPool",
})
#: Float nodes that do the heavy lifting (what should have become integer kernels).
FLOAT_COMPUTE_OPS = frozenset({"Conv", "FusedConv", "NchwcConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
                               "ConvTranspose", "GlobalAveragePool", "AveragePool", "MaxPool", "NchwcMaxPool"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


def count_ops(op_types: list[str]) -> dict[str, Any]:
    """Summarise a list of node op types into integer / float compute / Q-DQ / other counts."""
    c = Counter(op_types)
    integer = sum(n for op, n in c.items() if op in INTEGER_OPS)
    fcompute = sum(n for op, n in c.items() if op in FLOAT_COMPUTE_OPS)
    qdq = sum(n for op, n in c.items() if op in QDQ_OPS)
    return {
        "integer_nodes": integer, "float_compute_nodes": fcompute, "qdq_nodes": qdq,
        "other_nodes": sum(c.values()) - integer - fcompute - qdq, "total_nodes": sum(c.values()),
        "by_op": dict(sorted(c.items())),
    }


def optimised_graph_counts(onnx_path: str | os.PathLike[str], threads: int = 1,
                           level: str = "ORT_ENABLE_ALL") -> dict[str, Any]:
    """Let ORT (CPU EP) optimise ``onnx_path`` as it would for serving; count the saved graph."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ed-opt-") as tmp:
        out = Path(tmp) / "optimised.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        so.optimized_model_filepath = str(out)
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        model = onnx.load(str(out), load_external_data=False)
    counts = count_ops([n.op_type for n in model.graph.node])
    counts.update(source="ORT CPU EP optimised graph (SessionOptions.optimized_model_filepath, "
                         f"{level})", onnxruntime=ort.__version__)
    return counts
