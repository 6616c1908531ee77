"""Resource use of this process (peak memory), for fit reports and benchmarks."""

from __future__ import annotations

import sys


def peak_memory_mb() -> float | None:
    """Peak resident set size of this process since it started, in MiB; None where unknown.

    Read from ``getrusage(RUSAGE_SELF).ru_maxrss`` (KiB on Linux, bytes on macOS). It is the
    high-water mark of the whole process (imports and earlier work included), so it bounds the
    memory of a step that ran in it from above. Not available on Windows (returns None).
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(peak / scale, 1)
