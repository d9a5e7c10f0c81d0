"""Stops asked for by a signal: Ctrl-C (SIGINT) and SIGTERM (how SLURM and Snakemake stop a job).

The command line runs each command under ``sigterm_interrupts()``, so that SIGTERM unwinds the
stack as Ctrl-C does; library code that must finish a group of writes (the files of one training
epoch) runs it under ``uninterrupted()``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop asked for by ``signum``: SIGINT (Ctrl-C) or SIGTERM. Raised as an exception so that
    atomic writes clean up; ``str()`` says what was kept."""

    def __init__(self, signum: int = signal.SIGINT, detail: str = ""):
        super().__init__(detail)
        self.signum = signum


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block has run (say, the files of one training epoch are
    written), then act on them as they would have acted. Outside the main thread (where Python
    runs signal handlers) this does nothing."""
    if not _in_main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda received, frame: held.append(received))
                for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Interrupted while the block runs, as Ctrl-C raises KeyboardInterrupt (in the
    main thread, and unless SIGTERM is ignored)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _stop(signum: int, frame) -> None:
    raise Interrupted(signum)
