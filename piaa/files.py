"""Writing a file that other processes or threads may write at the same time (a shared cache, several processes of
one run): write to :func:`unique_tmp` of the target, then ``os.replace`` it onto the target. Each writer has its own
temporary file, so a reader sees the old file or a finished new one, never a half-written one, and two writers never
rename each other's file away. Library module, no entry point.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def unique_tmp(target: str | os.PathLike) -> Path:
    """A temporary sibling of ``target`` that no other process or thread uses (same folder, so the rename is
    atomic); its name keeps ``target``'s suffix, for writers that choose the format from it (``np.save``, PIL)."""
    target = Path(target)
    return target.with_name(f".{target.stem}.{os.getpid()}-{threading.get_ident()}.tmp{target.suffix}")
