"""One progress bar for every long job: the libraries report `progress(done, total)`, this draws it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[int, int], None]


@contextmanager
def progress_bar(description: str, unit: str = "item", disable: bool = False) -> Iterator[Progress]:
    """A `progress(done, total)` callback drawing a tqdm bar on stderr (nothing when `disable`)."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True, disable=disable)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
