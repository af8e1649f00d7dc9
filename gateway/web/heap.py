"""The heap after start-up and after each reload: frozen out of the cyclic garbage collector's sight."""

from __future__ import annotations

import gc

__all__ = ["freeze_heap"]


def freeze_heap(*, again: bool = False) -> None:
    """Move what start-up (or a reload) built out of the cyclic GC's sight (``gc.freeze``).

    The config, the mappings and the imported modules live until the next reload, yet a full
    collection walks them every time: 18–30 ms with some 47,000 objects after start, which set
    the p99 of ``/token``, and about a tenth of its CPU. Frozen, a collection looks at request
    garbage only. ``again`` (a reload): the previous freeze is undone first, so a collection
    can free the replaced config's cycles before the new one is frozen.
    """
    if again:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
