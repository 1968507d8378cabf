"""Import modules other engineers may not have landed yet, without hiding their real errors."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def optional_module(name: str) -> ModuleType | None:
    """``import name``, or None when that module (or a parent package) does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def optional_attr(module: str, attr: str) -> Any:
    """``module.attr`` or None when either is missing."""
    mod = optional_module(module)
    return None if mod is None else getattr(mod, attr, None)
