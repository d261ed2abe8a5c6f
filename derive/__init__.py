"""gdflows symbolic layer: derive the theory of gradient-descent dynamics, verify it, generate code.

Derivations (each prints as a formula, instantiates with ``.on(loss, params, eta=...)``,
compiles for any JAX loss with ``.compile(loss_fn)``, and checks itself with ``.verify()``):

- :func:`modified_vector_field` — the modified equation of GD or any explicit RK method.
- :func:`modified_loss` — L + (η/4)‖∇L‖² and beyond, or :class:`NotAGradientField`.
- :func:`gradient_taylor`, :func:`sharpness_gradient` — ∇L(w + x u) and ∇S = D³L[u, u].
- :func:`central_flow`, :func:`central_flow_multi` — σ², the projected flow, predictions, SDCP.
- :func:`rmsprop_central_flow` — scalar RMSProp's central flow: σ² from dS_eff/dτ = 0, dν/dτ.
- :func:`rmsprop_central_flow_multi`, :func:`diagonal_rmsprop_central_flow` — RMSProp's central
  flows with k eigenvalues in the preconditioner's metric (scalar and per-coordinate ν).

Code generation: :func:`build_function` (explicit SymPy → JAX kernels) and
:func:`compile_operator` (operator formulas → autodiff programs over pytrees).
"""
from .adaptive import ScalarRMSPropCentralFlow, rmsprop_central_flow
from .bseries import METHODS, ButcherTableau
from .preconditioned import diagonal_rmsprop_central_flow, rmsprop_central_flow_multi
from .differentiate import derivatives
from .central import CentralFlow, CentralFlowMulti, central_flow, central_flow_multi
from .errors import DeriveInputError, LossParseError, NotAGradientField
from .modified import (
    MAX_ORDER,
    GradientObstruction,
    ModifiedField,
    ModifiedLoss,
    gradient_orders,
    modified_loss,
    modified_vector_field,
)
from .operators import OperatorProgram, compile_operator
from .ops import DL, Dot, Form, Vec, eta, grad, loss, oplatex, opstr
from .parsing import parse_loss
from .result import Check, Derivation
from .taylor import SharpnessGradient, TaylorGradient, gradient_taylor, sharpness_gradient

__version__ = "0.1.0"


def __getattr__(name):  # code generation imports JAX lazily
    if name in ("build_function", "GeneratedFunction"):
        from . import codegen
        return getattr(codegen, name)
    raise AttributeError(f"module 'derive' has no attribute {name!r}")


__all__ = [
    "DL",
    "MAX_ORDER",
    "METHODS",
    "ButcherTableau",
    "diagonal_rmsprop_central_flow",
    "rmsprop_central_flow_multi",
    "CentralFlow",
    "CentralFlowMulti",
    "Check",
    "Derivation",
    "DeriveInputError",
    "Dot",
    "Form",
    "GeneratedFunction",
    "GradientObstruction",
    "LossParseError",
    "ModifiedField",
    "ModifiedLoss",
    "NotAGradientField",
    "OperatorProgram",
    "SharpnessGradient",
    "TaylorGradient",
    "Vec",
    "__version__",
    "build_function",
    "derivatives",
    "central_flow",
    "central_flow_multi",
    "compile_operator",
    "eta",
    "grad",
    "gradient_orders",
    "gradient_taylor",
    "loss",
    "modified_loss",
    "modified_vector_field",
    "oplatex",
    "opstr",
    "parse_loss",
    "sharpness_gradient",
]
