"""The registry of methods (`{method}` wildcard values): every module of this package is one.

A method named `x` (or a family `x<N>`, e.g. `bon4` of `bon<N>`) is the module `x.py` here, which
registers its `Method` subclass when imported. `get_method` imports only the module of the method
it is asked for, so that a job runs (and the workflow tracks, `rewardcond.modules`) no other
method's code; `available_methods` imports them all. A new method is a new file here and nothing
else changes.
"""

from rewardcond.methods.base import (
    NO_TARGET,
    Condition,
    Example,
    Method,
    available_methods,
    get_method,
    register,
)

__all__ = [
    "NO_TARGET",
    "Condition",
    "Example",
    "Method",
    "available_methods",
    "get_method",
    "register",
]
