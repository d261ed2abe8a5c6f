"""gdflows numeric layer (JAX): GD, gradient flow, modified flow, central flow and the GD
midpoint on any loss, with curvature tracking, side by side.

Importing ``numeric`` does not import SymPy; symbolic problems pull in ``derive`` when built.
"""
from .driver import RunResult, run, summarize
from .problem import Problem, from_jax, from_sympy
from .processes import PROCESS_NAMES, Process, Settings, make_process

__all__ = ["PROCESS_NAMES", "Problem", "Process", "RunResult", "Settings", "from_jax", "from_sympy",
           "make_process", "run", "summarize"]
