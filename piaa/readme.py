"""Regenerated README blocks: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` is replaced by
what a command prints, so every table in the README comes from the command that makes it (``make results``,
``python -m eval.follow --readme README.md``, ``python -m pmllm.steer --readme README.md``). Library module."""

from __future__ import annotations

from pathlib import Path


class ReadmeError(RuntimeError):
    """The file has no block of that name to replace (message names the file and the markers)."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_block(readme: str | Path, name: str, block: str) -> None:
    """Replace the ``name`` block of ``readme`` by ``block`` (the markers stay); raises :class:`ReadmeError`."""
    readme = Path(readme)
    start, end = markers(name)
    text = readme.read_text(encoding="utf-8")
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ReadmeError(f"{readme}: needs exactly one {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{block.strip()}\n{end}{tail}", encoding="utf-8")
