"""Progress bars on stderr, all drawn by tqdm (the one progress mechanism of twolevel).

* :func:`sample_bar`: a ``progress(done, total)`` callback for :func:`twolevel.explain.explain`.
* :func:`waiting`: elapsed seconds while one long blocking call runs (a remote explanation).
* :func:`each`: an iterable that shows how many items are done (clips of a folder).
* :func:`counter`: a bar the caller advances itself (epochs of training, files sent to a server).

Bars go to stderr, so ``--json`` on stdout stays clean.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


@contextlib.contextmanager
def sample_bar(label: str):
    """Yields ``progress(done, total)`` that draws a bar of samples.

    The bar opens at the first batch, so that refused options print no empty bar, and stops the
    clock at the last sample, so that the rate shown is the sampling rate alone. With
    ``samples="auto"`` the total is the cap until the rounds stop, then what was drawn.
    """
    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="sample", unit_scale=True, dynamic_ncols=True, desc=label))
        if total != bars[0].total:
            bars[0].total = total
        bars[0].update(done - bars[0].n)
        if done >= total:
            bars[0].close()

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


@contextlib.contextmanager
def waiting(label: str, enabled: bool | None = None, interval: float = 1.0):
    """Show ``label`` and the elapsed time, refreshed every ``interval`` s, until the block ends.

    Args:
        enabled: draw it (default: when stderr is a terminal).
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    bar = tqdm(total=None, desc=label, bar_format="{desc} {elapsed}", leave=False)
    done = threading.Event()

    def tick():
        while not done.wait(interval):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join(timeout=2 * interval)
        bar.close()


def each(items: Iterable[T], label: str, unit: str = "clip", enabled: bool = True,
         leave: bool = False) -> Iterator[T]:
    """``items`` with a bar counting them (left on screen when done only with ``leave``)."""
    if not enabled:
        return iter(items)
    return iter(tqdm(items, desc=label, unit=unit, leave=leave))


def counter(label: str, total: int | None, unit: str, initial: int = 0, enabled: bool = True,
            **options) -> tqdm:
    """A bar of ``total`` ``unit``s starting at ``initial``; the caller calls ``update``,
    ``set_postfix`` and ``close``. Disabled, it draws nothing and its methods do nothing.

    ``options`` go to tqdm as they are (e.g. ``dynamic_ncols``, ``smoothing``).
    """
    return tqdm(total=total, initial=initial, unit=unit, desc=label, disable=not enabled, **options)
