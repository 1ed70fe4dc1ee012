"""Test helper shared by the reader tests: expect each of several ``ReaderWarning``s."""

from __future__ import annotations

import contextlib

import pytest

from eval.readers import ReaderWarning


@contextlib.contextmanager
def expect_warnings(*patterns: str):
    """Expect a ``ReaderWarning`` matching each pattern (one nested ``pytest.warns`` per pattern): the reader
    announces what it dropped or repaired; a warning no pattern matches is re-emitted, so it still shows."""
    with contextlib.ExitStack() as stack:
        for pattern in patterns:
            stack.enter_context(pytest.warns(ReaderWarning, match=pattern))
        yield
