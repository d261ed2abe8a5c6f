"""The result type shared by all derivations: a formula that prints, instantiates, compiles,
and verifies itself."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from . import _validate
from .instantiate import Instantiator
from .ops import Vec, oplatex, opstr
from .ops import eta as ETA

__all__ = ["Check", "Derivation", "eta_series"]


def eta_series(terms, printer=opstr, var="η", latex=False) -> str:
    """``t0 + η·t1 − η²·(t2) + …`` for the coefficients of successive powers of ``var``."""
    sup = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
    minus, dot, lp, rp = ("-", " ", r"\left(", r"\right)") if latex else ("−", "·", "(", ")")
    out = ""
    for j, t in enumerate(terms):
        t = sp.sympify(t)
        if t == 0:
            continue
        negative = j > 0 and t.could_extract_minus_sign()
        body = printer(-t if negative else t)
        if j:
            power = var if j == 1 else (f"{var}^{{{j}}}" if latex else var + str(j).translate(sup))
            body = f"{power}{dot}{lp}{body}{rp}" if isinstance(t, sp.Add) else f"{power}{dot}{body}"
        if not out:
            out = (minus if negative else "") + body
        else:
            out += (f" {minus} " if negative else " + ") + body
    return out or "0"


def _learning_rate(eta):
    """η for ``.on``: a symbol or expression, or a positive finite number."""
    value = _validate.as_expr(eta, name="eta")
    if value.is_number and not (value.is_extended_real and value.is_positive):
        raise _validate.DeriveInputError(f"eta: expected a positive number or a symbol, got {value}")
    return value


@dataclass(frozen=True)
class Check:
    """One verification: what was checked, whether it held, and the evidence in one line."""

    name: str
    passed: bool
    detail: str = ""

    def __str__(self):
        return f"[{'ok' if self.passed else 'FAIL'}] {self.name}" + (f": {self.detail}" if self.detail else "")


class Derivation:
    """A derived operator formula ``lhs = expr`` over the vocabulary of :mod:`derive.ops`.

    Subclasses set ``title``, ``lhs``, ``expr`` and ``kind`` ("vector" or "scalar") and
    implement :meth:`_checks`.
    """

    title: str = "derivation"
    lhs: str = "result"
    lhs_latex: str = "result"
    expr: sp.Expr = sp.Integer(0)
    kind: str = "vector"
    needs_smooth: bool = True

    # ---- printing
    def __str__(self):
        return f"{self.lhs} = {opstr(self.expr)}"

    def __repr__(self):
        return f"<{type(self).__name__}: {self}>"

    def latex(self) -> str:
        """The formula as LaTeX."""
        terms = getattr(self, "series_terms", None)
        rhs = eta_series(terms, oplatex, r"\eta", latex=True) if terms else oplatex(self.expr)
        return f"{self.lhs_latex} = {rhs}"

    def _repr_latex_(self):
        return f"${self.latex()}$"

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the input vectors the formula needs (e.g. the eigenvector ``u``)."""
        return tuple(sorted(a.name for a in sp.preorder_traversal(self.expr) if isinstance(a, Vec)))

    # ---- instantiation
    def on(self, loss, params, eta=ETA, consts=(), **vectors):
        """Instantiate on a concrete SymPy loss in explicit parameters.

        SymPy's convention: symbols of ``loss`` other than ``params`` are constants, held fixed
        and kept symbolic in the result (``modified_loss(1).on(lam*theta**2/2, [theta])`` keeps
        ``lam``). The formula's own symbols (η, σ², X_ij, default input vectors) are
        :class:`sympy.Dummy` objects, so they never merge with a user's symbol of the same name.

        Args:
            loss: scalar SymPy expression.
            params: parameter symbols (the coordinates of w).
            eta: learning rate, a positive number or a symbol (default: :data:`derive.eta`).
            consts: optional: symbols of ``loss`` that are constants (checked not to be params;
                any other undeclared symbol is a constant too).
            **vectors: explicit columns for input vectors such as ``u``; missing ones become
                columns of Dummy symbols ``u_<param>``.

        Returns:
            A column ``Matrix`` for vector formulas, a scalar expression for scalar ones.

        Raises:
            DeriveInputError: bad loss/params/consts/eta/vectors, a symbol of ``loss`` that has a
                parameter's name but other assumptions (almost always a mistake), or a non-smooth
                loss for a derivation that needs derivatives.
        """
        loss = _validate.as_expr(loss, name="loss")
        params = _validate.as_params(params, name="params")
        _validate.as_consts(consts, params, name="consts")
        eta = _learning_rate(eta)
        same_name = sorted({s.name for s in _validate.free_symbols(loss) - set(params)} & {p.name for p in params})
        if same_name:
            raise _validate.DeriveInputError(
                f"loss: symbols {same_name} have a parameter's name but other assumptions "
                "(e.g. real=True); use the parameter symbols themselves")
        if self.needs_smooth:
            _validate.check_smooth(loss, params, name="loss", what=f"'{self.title}'")
        unknown = set(vectors) - set(self.inputs)
        if unknown:
            raise _validate.DeriveInputError(
                f"vectors: {sorted(unknown)} are not inputs of '{self.title}' (inputs: {list(self.inputs)})")
        value = Instantiator(loss, params, eta, vectors).value(self.expr)
        if isinstance(value, sp.MatrixBase):
            return value.applyfunc(lambda e: e)
        return value

    # ---- compilation
    def compile(self, loss_fn: Callable):
        """An autodiff program evaluating this formula for a JAX loss over a pytree."""
        from .operators import compile_operator
        return compile_operator(self.expr, loss_fn, name=self.title)

    # ---- verification
    def verify(self, seed: int = 0) -> list[Check]:
        """Run this derivation's own checks (exact identities, random rational points)."""
        return list(self._checks(seed))

    def _checks(self, seed: int):
        return []
