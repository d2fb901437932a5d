"""A time limit for code that may never return (a user's factory, Torch-Pruning's grouping).

A timer signal interrupts the block wherever it is; the caller learns where it was stopped and turns
that into its own one-line error. Python ignores an exception raised where it cannot propagate (a
weakref callback, ``__del__``), so the stop repeats every `REPEAT_S` until the block has left. Signals
reach the main thread only: elsewhere the block runs unbounded (a worker thread's caller bounds it in
its own way).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["Expired", "deadline", "innermost"]

REPEAT_S = 0.25
_LEAVING = frozenset({__file__, contextlib.__file__})  # the deadline's own exit: no stop there


class Expired(Exception):
    """The block ran past its limit; ``frame`` is where it was stopped."""

    def __init__(self, seconds: float, frame: FrameType | None) -> None:
        super().__init__(f"did not finish in {seconds:g} s")
        self.seconds = seconds
        self.frame = frame


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `Expired` inside the block once it has run ``seconds`` (main thread only). Inside
    another deadline, the one that ends first applies, and the outer one goes on after the block."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        if frame is None or frame.f_code.co_filename not in _LEAVING:
            raise Expired(seconds, frame)

    outer, outer_repeat = signal.getitimer(signal.ITIMER_REAL)  # an enclosing deadline's time left
    if outer and outer <= seconds:  # it ends first: it governs
        yield
        return
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, outer - (time.monotonic() - started)), outer_repeat)


def innermost(frame: FrameType | None, outside: Callable[[str], bool]) -> tuple[str, str] | None:
    """``("function()", filename)`` of the innermost frame of ``frame``'s stack whose file
    ``outside`` accepts, or None."""
    for candidate, line in traceback.walk_stack(frame):
        filename = candidate.f_code.co_filename
        if outside(filename):
            return f"{candidate.f_code.co_qualname}()", f"{filename}:{line}"
    return None
