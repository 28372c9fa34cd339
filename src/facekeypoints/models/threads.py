"""How many threads a backend may be asked for: one cap for training (``train.num_threads``) and
prediction (``threads=``, ``--threads``; torch and ONNX Runtime alike).

Examples
--------
>>> max_threads() >= 64
True
"""
from __future__ import annotations

import os

__all__ = ["max_threads"]


def max_threads() -> int:
    """The most threads worth asking for on this machine: beyond about 4 per core threads only wait on
    each other, and far more broke the process (``--threads 100000`` took 16 GB and could not be
    stopped; 3000000000 overflowed ONNX Runtime's int)."""
    return max(64, 4 * (os.cpu_count() or 1))
