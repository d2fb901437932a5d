"""Stop signals end a command as Ctrl-C does.

``timeout`` and schedulers send SIGTERM, a closed terminal SIGHUP; by default either ends Python at
once, leaving the MLflow parent run RUNNING, the interrupted trial unclosed and `autoprune ui`'s
server serving on its port. Here they raise `Interrupted` (a KeyboardInterrupt) instead, so runs are
closed as KILLED, the resume command is printed and child servers are stopped; a repeated signal
is ignored while that happens. The exit status is 128 + the signal's number, as a shell reports it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ..errors import Interrupted

__all__ = ["exit_status", "stop_signals_interrupt"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    for other in _SIGNALS:  # once is enough: let the clean-up run
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise `Interrupted` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _interrupt) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_status(exc: BaseException) -> int:
    """128 + the number of the signal that stopped the command (130 for Ctrl-C)."""
    seen: BaseException | None = exc
    while seen is not None and not hasattr(seen, "signum"):  # click turns the interrupt into an Abort
        seen = seen.__cause__ or seen.__context__
    return 128 + int(getattr(seen, "signum", signal.SIGINT))
