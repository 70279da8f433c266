"""The registry of methods (`{method}` wildcard values): every module of this package is one.

Importing the package imports each module in it, and each registers its `Method` subclass, so a
new method is a new file here and nothing else changes.
"""

import importlib
import pkgutil

from rewardcond.methods.base import (
    NO_TARGET,
    Condition,
    Example,
    Method,
    available_methods,
    get_method,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "NO_TARGET",
    "Condition",
    "Example",
    "Method",
    "available_methods",
    "get_method",
    "register",
]
