"""Ctrl-C and SIGTERM held back while a run is created and recorded as open.

A run is ended KILLED on Ctrl-C only if it is known to be open. Between the store creating a
run and the tracker noting its id, an interrupt would leave a RUNNING run nobody ends; so
the signal waits for the end of that short step and is raised right after it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for the block; one that arrived raises ``KeyboardInterrupt`` after.

    Off the main thread (where Python delivers no signals) the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)

    previous = {number: signal.signal(number, remember) for number in HELD}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    if arrived:
        raise KeyboardInterrupt
