"""glibc's allocator as our networks want it: freed memory kept mapped for a whole CLI process,
returned at once within a block, or trimmed once.

glibc serves every allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free, so each
full-resolution activation of a frame is page-faulted in anew, layer after layer, frame after
frame: on CPU that kernel work is a large share of a frame's time. Serving big blocks from the
heap and never trimming it keeps the pages mapped; the process then holds its peak memory until
it exits, which is what a denoise, batch, bench or train process does anyway. Blender's memory
is not ours to tune, so only the CLI calls :func:`keep_freed_memory`. Without glibc (macOS,
Windows, musl) every function here leaves the allocator as it is.
"""

from __future__ import annotations

import contextlib
import ctypes

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers
_keeping = False


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(keep: bool) -> bool:
    libc = _libc()
    try:
        if keep:
            return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
        ok = bool(libc.mallopt(_M_MMAP_MAX, 65536)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10))  # glibc's defaults
        libc.malloc_trim(0)
        return ok
    except AttributeError:  # no libc, or one without mallopt
        return False


def keep_freed_memory() -> bool:
    """Stop glibc from returning big freed blocks to the kernel for the rest of this process.
    Returns whether the allocator took it (False without glibc)."""
    global _keeping
    if not _keeping:
        _keeping = _mallopt(keep=True)
    return _keeping


def keeping_freed_memory() -> bool:
    """Whether freed memory stays mapped right now (outside :func:`freed_memory_returned`)."""
    return _keeping


@contextlib.contextmanager
def freed_memory_returned():
    """Within this block glibc returns freed memory at once, as by default. The batch uses it for
    sequences whose frames fill the memory budget: there the heap that :func:`keep_freed_memory`
    keeps (read and write buffers, tiles of several sizes) would take the peak past the budget.
    A no-op unless the process keeps freed memory."""
    global _keeping
    if not _keeping:
        yield
        return
    _mallopt(keep=False)
    _keeping = False
    try:
        yield
    finally:
        _keeping = _mallopt(keep=True)


def return_freed_memory() -> None:
    """Trim the heap once: after a frame that filled the budget its freed activations would
    otherwise sit under the next frame's buffers."""
    libc = _libc()
    try:
        libc.malloc_trim(0)
    except AttributeError:
        pass
