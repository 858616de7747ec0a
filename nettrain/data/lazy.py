"""A package's names imported from their modules on first use (PEP 562), so importing one light
module of the package (`data.kinds`, `data.stream.path`) does not import numpy, pandas and pyarrow
through the package's `__init__`."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_names(package: str, home: dict[str, str], space: dict[str, Any]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: a name of `home` (name -> module) imported from its module and
    kept in the package's namespace `space`; any other name, a module of the package."""

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:  # a module of the package (`package.<module>` as an attribute)
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":  # a module it imports is missing: that error as it is
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        space[name] = value
        return value

    return __getattr__
