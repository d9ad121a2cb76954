"""User-facing errors: the CLI prints these as one clear message, never a traceback."""

from __future__ import annotations


class EdgedistalError(Exception):
    """An error caused by the user's input or environment, with the fix spelled out.

    ``str(err)`` is the problem (naming the file involved); ``err.hint`` says what to do.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def format(self) -> str:
        text = f"error: {self}"
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class MissingDependencyError(EdgedistalError):
    """An optional dependency (TensorRT, cuda-python, onnxruntime-gpu...) is not installed."""
