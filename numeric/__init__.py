"""gdflows numeric layer (JAX): GD, gradient flow, modified flow, central flow and the GD
midpoint on any loss, with curvature tracking, side by side; and for RMSProp (scalar or diagonal,
:class:`RMSProp`) the optimizer, its stable flow and its central flow (``run(..., optimizer=RMSProp())``).

The main job from Python, on your own model: ``compare(from_jax(loss_fn, params), lr=…, steps=…,
flows=…, out=…)`` writes what ``gdflows compare`` writes and returns its summary.

Importing ``numeric`` does not import SymPy; symbolic problems pull in ``derive`` when built.
"""
from .adaptive import RMSProp
from .compare import CompareConfig, compare
from .driver import RunResult, run, summarize
from .problem import Problem, from_jax, from_sympy
from .processes import PROCESS_NAMES, Process, Settings, make_process

__all__ = ["CompareConfig", "PROCESS_NAMES", "Problem", "Process", "RMSProp", "RunResult", "Settings", "compare",
           "from_jax", "from_sympy",
           "make_process", "run", "summarize"]
