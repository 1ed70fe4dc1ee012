"""One policy for typed dataclass configs saved as JSON next to safetensors (``pmllm_config.json``, ``user.json``,
task-vector ``NAME.json``, the backbone block of a manifest).

Unknown keys and missing required keys are refused with a :class:`piaa.schema.SchemaError` that names the key and
the file; a file that is not JSON names the line. Nothing is dropped silently. Library module, no entry point.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from piaa.schema import SchemaError

T = TypeVar("T")


def config_from_dict(cls: type[T], data: Any, source: str | Path) -> T:
    """``cls(**data)`` after checking that every key is a field of ``cls`` and every required field is present."""
    if not isinstance(data, dict):
        raise SchemaError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SchemaError(f"{source}: unknown key(s) {unknown} for {cls.__name__} (known: {sorted(fields)})")
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]  # fmt: skip
    missing = [n for n in required if n not in data]
    if missing:
        raise SchemaError(f"{source}: missing key(s) {missing} for {cls.__name__}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"{source}: invalid {cls.__name__} ({err})") from None


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a JSON config file into ``cls`` (see :func:`config_from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: malformed, not valid JSON ({err.msg}, line {err.lineno})") from None
    return config_from_dict(cls, data, path)


def save_config(config: Any, path: str | Path) -> Path:
    """Write a dataclass config as indented JSON."""
    path = Path(path)
    path.write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    return path
