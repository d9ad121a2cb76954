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


#: errno → (what went wrong, the fix) for file-system errors users cause (full disk, read-only
#: folder, a file where a folder should be). Anything else stays a traceback: it is a bug.
_OS_ERRORS: dict[int, tuple[str, str]] = {}


def _os_table() -> dict[int, tuple[str, str]]:
    import errno

    if not _OS_ERRORS:
        _OS_ERRORS.update({
            errno.ENOSPC: ("no space left on {path}", "free disk space there, or pass an --out on another disk"),
            errno.EDQUOT: ("disk quota exceeded on {path}", "free space in your quota, or write elsewhere"),
            errno.EROFS: ("{path}: read-only file system", "pass an --out on a writable disk"),
            errno.EACCES: ("{path}: permission denied", "pass an --out you can write to, or fix its permissions"),
            errno.EPERM: ("{path}: operation not permitted", "pass an --out you can write to"),
            errno.EEXIST: ("{path}: exists and is not a folder", "pass another --out, or move that file away"),
            errno.ENOTDIR: ("{path}: a part of this path is a file, not a folder",
                            "pass an --out whose parent folders are folders"),
            errno.EISDIR: ("{path}: is a folder, a file was expected", "pass a file path"),
        })
    return _OS_ERRORS


def from_os_error(exc: OSError) -> EdgedistalError | None:
    """A one-line :class:`EdgedistalError` for a user-caused OSError, or None (a real bug)."""
    entry = _os_table().get(exc.errno or -1)
    if entry is None:
        return None
    message, hint = entry
    path = exc.filename if exc.filename is not None else "the output device"
    return EdgedistalError(message.format(path=path), hint)
