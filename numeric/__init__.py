"""gdflows numeric layer (JAX): GD, gradient flow, modified flow, central flow and the GD
midpoint on any loss, with curvature tracking, side by side; and for RMSProp (scalar or diagonal,
:class:`RMSProp`) the optimizer, its stable flow and its central flow (``run(..., optimizer=RMSProp())``).

The main job from Python, on your own model: ``compare(from_jax(loss_fn, params), lr=…, steps=…,
flows=…, out=…)`` writes what ``gdflows compare`` writes and returns its summary.

Importing ``numeric`` does not import SymPy (symbolic problems pull in ``derive`` when built), nor
JAX until one of its names is used.
"""
import importlib

from .compare import CompareConfig, compare   # cheap (no JAX); eager, so the function shadows its module

_HOMES = {"RMSProp": "adaptive", "RunResult": "driver",
          "run": "driver", "summarize": "driver", "Problem": "problem", "from_jax": "problem",
          "from_sympy": "problem", "PROCESS_NAMES": "processes", "Process": "processes", "Settings": "processes",
          "make_process": "processes"}

__all__ = ["CompareConfig", "PROCESS_NAMES", "Problem", "Process", "RMSProp", "RunResult", "Settings", "compare",
           "from_jax", "from_sympy", "make_process", "run", "summarize"]


def __getattr__(name):
    """The public names, imported when first used: ``gdflows`` refuses bad input before JAX loads."""
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
