"""Keep numpy's temporaries in the heap, so that every fit does not page-fault them back in.

The fitter works on cache-sized blocks, and each objective evaluation makes dozens of temporary
arrays of 30-300 KB. glibc's malloc serves blocks above its mmap threshold (128 KiB at start)
with fresh mmap()s and trims the top of the heap once more than its trim threshold is free, so
those temporaries are returned to the kernel after each call and page-faulted in again, zeroed,
on the next one: measured here, over half of a Laplace fit's time. glibc raises both thresholds
by itself after the program frees an mmap()ed block (to that block's size, at most 32 MiB; the
trim threshold to twice that, see mallopt(3), "M_MMAP_THRESHOLD"). Allocating and freeing one
such block, without touching its pages, makes it do so at once. The cost is that up to 64 MiB of
freed heap stay with the process. Other allocators ignore it.
"""

from __future__ import annotations

import numpy as np

_PRIMER_BYTES = 31 * 2**20  # just under glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit)
_primed = False


def keep_temporaries_in_heap():
    """Raise glibc's dynamic mmap and trim thresholds once per process (see module docstring)."""
    global _primed
    if not _primed:
        primer = np.empty(_PRIMER_BYTES // 8)  # never touched: no page is faulted in
        del primer
        _primed = True
