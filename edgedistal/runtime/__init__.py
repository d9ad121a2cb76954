"""One inference interface over several backends; see :mod:`edgedistal.runtime.base`."""
