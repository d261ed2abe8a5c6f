"""``gdflows derive``: every derivation with its result and verification status."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp

from .adaptive import rmsprop_central_flow
from .preconditioned import diagonal_rmsprop_central_flow, rmsprop_central_flow_multi
from .central import central_flow, central_flow_multi
from .errors import NotAGradientField
from .modified import GradientObstruction, gradient_orders, modified_loss, modified_vector_field
from ._walk import tree_size
from .ops import eta
from .result import Check
from .taylor import gradient_taylor, sharpness_gradient

__all__ = ["Section", "derivation_report", "instantiate_report"]


@dataclass
class Section:
    """One printed block: a title, formula lines, and the checks that back them."""

    title: str
    lines: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def render(self) -> str:
        status = "verified" if self.passed else "FAILED"
        head = f"== {self.title} [{status}, {len(self.checks)} checks, {self.seconds:.1f}s]"
        body = [f"   {line}" for line in self.lines] + [f"   {c}" for c in self.checks]
        return "\n".join([head] + body)


def _section(title, build, latex=False, seed=0):
    t0 = time.perf_counter()
    sec = Section(title)
    for item in build():
        if isinstance(item, str):
            sec.lines.append(item)
        else:
            sec.lines.append(item.latex() if latex else str(item))
            sec.checks.extend(item.verify(seed))
    sec.seconds = time.perf_counter() - t0
    return sec


def _modified_fields(max_order):
    yield from (modified_vector_field(k) for k in range(1, max_order + 1))


def _other_methods():
    for m in ("midpoint", "heun"):
        yield modified_vector_field(3, m)


def _modified_losses(max_order):
    yield modified_loss(1)
    general = gradient_orders(max_order)
    quad = gradient_orders(max_order, assume="quadratic")
    for label, table in (("general L", general), ("quadratic L", quad)):
        yield f"gradient field at order j ({label}): " + ", ".join(
            f"{j}: {'yes' if v else 'no'}" for j, v in table.items())
    try:
        modified_loss(2)
        yield "modified_loss(2) unexpectedly exists"
    except NotAGradientField as err:
        yield f"modified_loss(2) raises NotAGradientField: {err}"
    for j in range(1, max_order + 1):
        yield GradientObstruction(j)
    yield modified_loss(max_order, assume="quadratic")


def _one_d_quadratic():
    lam, theta = sp.symbols("lambda theta", positive=True)
    L = lam * theta**2 / 2
    L_eta = sp.factor(modified_loss(1).on(L, [theta]))    # lambda: a constant, kept symbolic
    yield f"on ½λθ²: L_η = {_display(L_eta)}"


def derivation_report(max_order: int = 4, latex: bool = False, seed: int = 0) -> list[Section]:
    """Build every derivation, print-ready, with its checks run."""
    return [
        _section(f"Modified vector fields of GD, orders 1..{max_order}",
                 lambda: _modified_fields(max_order), latex, seed),
        _section("Modified fields of explicit midpoint and Heun", _other_methods, latex, seed),
        _section("Modified losses and where they exist", lambda: _modified_losses(max_order), latex, seed),
        _section("Quadratic example", _one_d_quadratic, latex, seed),
        _section("Third-order Taylor expansion of the gradient", lambda: [gradient_taylor(3)], latex, seed),
        _section("Gradient of the sharpness", lambda: [sharpness_gradient(),
                                                       sharpness_gradient().taylor_at_eigenvector()], latex, seed),
        _section("Central flow, one unstable eigenvalue", lambda: _central_one(), latex, seed),
        _section("Central flow, two unstable eigenvalues", lambda: [central_flow_multi(2)], latex, seed),
        _section("Central flow of scalar RMSProp, one unstable eigenvalue", lambda: [rmsprop_central_flow()],
                 latex, seed),
        _section("Central flows of RMSProp, k = 2 eigenvalues in the preconditioner's metric",
                 lambda: [rmsprop_central_flow_multi(2), diagonal_rmsprop_central_flow(2)], latex, seed),
    ]


def _central_one():
    cf = central_flow()
    yield cf
    yield f"{cf.sigma2}"
    yield f"{cf.predicted_loss}"
    yield f"{cf.predicted_grad_norm2}"


def _display(expr) -> str:
    """Text of a result, the learning-rate Dummy shown as η (SymPy would print _eta)."""
    return str(expr.xreplace({eta: sp.Symbol("η")}))


def instantiate_report(loss, params, eta_value, order: int = 2) -> list[str]:
    """Concrete formulas for a user's loss: the modified loss and the modified field.

    A formula is simplified only when it is small: at most 150 operations
    (``sympy.count_ops``) and no numeric exponent above 16 in magnitude.
    ``sympy.simplify`` expands powers (it never finished on ``(x+1)**10000``)
    and took five minutes on the order-3 field of a logistic loss (2,300
    operations); a larger formula is printed as derived, marked "(not
    simplified: expression too large)".
    """
    max_ops, max_exponent, max_printed = 150, 16, 20_000

    def shown(expr):
        size = tree_size(expr)
        if size > max_printed:   # printing is linear in the tree, which nested losses make exponential
            return f"(not printed: {size:.3g} nodes as text)"
        huge_power = any(p.exp.is_Number and abs(p.exp) > max_exponent for p in expr.atoms(sp.Pow))
        if huge_power or sp.count_ops(expr) > max_ops:
            return f"{_display(expr)}   (not simplified: expression too large)"
        return _display(sp.simplify(expr))

    lines = [f"loss: L = {loss}   params: {', '.join(map(str, params))}   η = {_display(sp.sympify(eta_value))}"]
    L1 = modified_loss(1).on(loss, params, eta=eta_value)
    lines.append(f"modified loss (order 1): L_η = {shown(L1)}")
    field = modified_vector_field(order).on(loss, params, eta=eta_value)
    for p, comp in zip(params, field):
        lines.append(f"modified field (order {order}), d{p}/dt = {shown(comp)}")
    return lines
