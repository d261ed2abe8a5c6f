"""Operator vocabulary: derivatives of a generic loss L on R^n, as SymPy atoms.

Derivations are written over these atoms, never over coordinates, so they hold for any
dimension n. The same formula is then instantiated on a concrete SymPy loss
(:mod:`derive.instantiate`) or compiled to an autodiff program (:mod:`derive.operators`).

Vocabulary (glossary shared with ``numeric``):
    ``grad`` = DL()          the gradient g = ∇L (a vector)
    DL(a)                    H a, a Hessian-vector product
    DL(a, b)                 T[a, b] = D³L[a, b], a vector
    DL(a1, ..., am)          D^{m+1}L[a1, ..., am], a vector
    Form()                   the loss L (a scalar)
    Form(a1, ..., am)        D^m L[a1, ..., am], a scalar
    Dot(a, b)                ⟨a, b⟩
    Vec("u")                 a named input vector (e.g. an eigenvector)

Vector expressions are linear combinations ``c1*v1 + c2*v2`` of vector atoms with scalar
coefficients; :func:`inner` and :func:`directional` expand them multilinearly.
"""
from __future__ import annotations

import sympy as sp
from sympy import Function, Symbol
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

__all__ = [
    "DL",
    "Dot",
    "Form",
    "Vec",
    "directional",
    "eta",
    "grad",
    "inner",
    "is_vector",
    "loss",
    "split_vector_terms",
    "vector_atoms",
]

# The learning rate. A Dummy: it never equals a user's symbol, whatever its name and assumptions
# (print it with opstr as η; SymPy's own printers show _eta).
eta = sp.Dummy("eta", positive=True)


def _sorted_args(args):
    return tuple(sorted(args, key=sp.default_sort_key))


class Vec(Symbol):
    """A named input vector, held constant unless a derivation says otherwise."""


class _SymmetricAtom(Function):
    """A multilinear atom symmetric in its arguments: canonical order, zero if any argument is."""

    is_commutative = True

    @classmethod
    def eval(cls, *args):
        if any(a == 0 for a in args):
            return sp.Integer(0)
        s = _sorted_args(args)
        if s != args:
            return cls(*s)
        return None


class DL(_SymmetricAtom):
    """D^{m+1}L[a1, ..., am] as a vector; ``DL()`` is the gradient g."""


class Form(_SymmetricAtom):
    """D^m L[a1, ..., am] as a scalar; ``Form()`` is the loss L."""


class Dot(Function):
    """The Euclidean inner product ⟨a, b⟩ of two vector atoms (symmetric)."""

    is_commutative = True

    @classmethod
    def eval(cls, a, b):
        if a == 0 or b == 0:
            return sp.Integer(0)
        if sp.default_sort_key(b) < sp.default_sort_key(a):
            return cls(b, a)
        return None


grad = DL()
loss = Form()


def is_vector(expr) -> bool:
    """Whether ``expr`` is a vector atom (DL or Vec)."""
    return isinstance(expr, (DL, Vec))


def split_vector_terms(expr) -> list[tuple[sp.Expr, sp.Expr]]:
    """Split a vector expression into ``[(scalar coefficient, vector atom), ...]``."""
    out = []
    expr = sp.expand(expr)
    if expr == 0:
        return out
    for term in sp.Add.make_args(expr):
        vecs = [f for f in sp.Mul.make_args(term) if is_vector(f)]
        if len(vecs) != 1:
            raise ValueError(f"expr: term {term} is not a scalar times one vector atom")
        out.append((sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not vecs[0]]), vecs[0]))
    return out


def vector_atoms(expr) -> set:
    """All Vec inputs appearing anywhere in ``expr``."""
    return {a for a in sp.preorder_traversal(expr) if isinstance(a, Vec)}


def inner(a, b):
    """⟨a, b⟩ expanded bilinearly over linear combinations of vector atoms."""
    return sp.Add(*[ca * cb * Dot(va, vb)
                    for ca, va in split_vector_terms(a) for cb, vb in split_vector_terms(b)])


def _multilinear(cls, args, extra=()):
    """cls(*args, *extra) expanded multilinearly in each vector argument."""
    expanded = [split_vector_terms(a) for a in args]
    total = sp.Integer(0)

    def rec(i, coef, atoms):
        nonlocal total
        if i == len(expanded):
            total += coef * cls(*atoms, *extra)
            return
        for c, v in expanded[i]:
            rec(i + 1, coef * c, atoms + (v,))

    rec(0, sp.Integer(1), ())
    return total


def expand_atoms(expr):
    """Distribute every DL/Form/Dot over linear combinations in its arguments."""
    def fix(e):
        if isinstance(e, (DL, Form)) and e.args:
            args = [expand_atoms(a) for a in e.args]
            return _multilinear(type(e), args)
        if isinstance(e, Dot):
            return inner(expand_atoms(e.args[0]), expand_atoms(e.args[1]))
        return None
    return sp.expand(expr.replace(lambda e: isinstance(e, (DL, Form, Dot)), lambda e: fix(e) or e))


def directional(expr, v, moving=None):
    """Directional derivative d/dε expr(w + ε v) at ε = 0, by the chain rule.

    Args:
        expr: a scalar or vector expression over the vocabulary.
        v: the direction (a vector expression, held constant).
        moving: optional mapping ``{Vec: vector expression}`` giving the derivative of an input
            vector that depends on w; inputs not listed are held constant.

    Returns:
        The derivative, as an expression over the same vocabulary.
    """
    moving = moving or {}
    expr = sp.sympify(expr)
    if isinstance(expr, Vec):
        return moving.get(expr, sp.Integer(0))
    if isinstance(expr, (DL, Form)):
        args = expr.args
        out = _multilinear(type(expr), args, extra=(v,))
        for i, a in enumerate(args):
            da = directional(a, v, moving)
            if da != 0:
                out += _multilinear(type(expr), args[:i] + (da,) + args[i + 1:])
        return sp.expand(out)
    if isinstance(expr, Dot):
        a, b = expr.args
        return sp.expand(inner(directional(a, v, moving), b) + inner(a, directional(b, v, moving)))
    if isinstance(expr, sp.Add):
        return sp.Add(*[directional(t, v, moving) for t in expr.args])
    if isinstance(expr, sp.Mul):
        factors = expr.args
        return sp.expand(sp.Add(*[
            sp.Mul(*factors[:i], directional(f, v, moving), *factors[i + 1:])
            for i, f in enumerate(factors)]))
    if isinstance(expr, sp.Pow):
        base, exp = expr.args
        if exp.free_symbols & _atom_symbols(exp):
            raise ValueError("expr: exponents depending on the loss are not supported")
        return sp.expand(exp * base ** (exp - 1) * directional(base, v, moving))
    if expr.is_Atom:
        return sp.Integer(0)
    raise ValueError(f"expr: cannot differentiate {type(expr).__name__} along the parameters")


def _atom_symbols(expr):
    return {a for a in sp.preorder_traversal(expr) if isinstance(a, (DL, Form, Dot, Vec))}


# --------------------------------------------------------------------------- printing

_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _chain(expr):
    """Unroll DL(DL(...(x))) chains: returns (power k, innermost argument)."""
    k = 0
    while isinstance(expr, DL) and len(expr.args) == 1:
        k += 1
        expr = expr.args[0]
    return k, expr


def _print_order(args):
    """Simplest arguments first (g before Hg before T[g, g]; named inputs by name)."""
    return sorted(args, key=lambda a: (sp.count_ops(a) + len(a.args), str(a)))


def _gchain(e):
    """k if e is H^k g, else None."""
    k, base = _chain(e)
    return k if isinstance(base, DL) and not base.args else None


def _hpow(k, sup):
    return "" if k == 0 else ("H" if k == 1 else sup(k))


class OpStrPrinter(StrPrinter):
    """Prints the vocabulary as formulas: ``H²g``, ``T[g, g]``, ``⟨g, H g⟩``."""

    def _vec(self, e):
        if isinstance(e, DL) and not e.args:
            return "g"
        if isinstance(e, DL) and len(e.args) == 1:
            k, inner_ = _chain(e)
            base = self._vec(inner_)
            hp = "H" if k == 1 else "H" + str(k).translate(_SUP)
            if base == "g" or isinstance(inner_, Vec):
                return f"{hp}{base}" if len(base) == 1 else f"{hp} {base}"
            return f"{hp} {base}"
        if isinstance(e, DL):
            name = "T" if len(e.args) == 2 else "D" + str(len(e.args) + 1).translate(_SUP) + "L"
            return f"{name}[{', '.join(self._vec(a) for a in _print_order(e.args))}]"
        if isinstance(e, Vec):
            return e.name
        return "(" + self.doprint(e) + ")"

    def _print_DL(self, e):
        return self._vec(e)

    def _print_Form(self, e):
        a = _print_order(e.args)
        if not a:
            return "L"
        ks = [_gchain(x) for x in a]
        if len(a) <= 2 and None not in ks:  # gᵀ H^k g
            k = sum(ks) + len(a) - 1
            return "‖g‖²" if k == 0 else f"gᵀ{_hpow(k, lambda n: 'H' + str(n).translate(_SUP))}g"
        if len(a) == 1:
            return f"⟨g, {self._vec(a[0])}⟩"
        if len(a) == 2:
            return f"⟨{self._vec(a[0])}, H {self._vec(a[1])}⟩"
        return f"D{str(len(a)).translate(_SUP)}L[{', '.join(self._vec(x) for x in a)}]"

    def _print_Dot(self, e):
        a, b = e.args
        if a == b:
            return f"‖{self._vec(a)}‖²"
        return f"⟨{self._vec(a)}, {self._vec(b)}⟩"

    def _print_Vec(self, e):
        return e.name

    def _print_Symbol(self, e):
        return {"eta": "η", "sigma2": "σ²", "nu": "ν", "beta2": "β₂"}.get(e.name, e.name)

    _print_Dummy = _print_Symbol


class OpLatexPrinter(LatexPrinter):
    """LaTeX for the vocabulary: ``H^{2} g``, ``D^{3}L[g, g]``, ``\\langle g, Hg \\rangle``."""

    def _vec(self, e):
        if isinstance(e, DL) and not e.args:
            return r"\nabla L"
        if isinstance(e, DL) and len(e.args) == 1:
            k, inner_ = _chain(e)
            hp = "H" if k == 1 else f"H^{{{k}}}"
            base = self._vec(inner_)
            simple = isinstance(inner_, Vec) or (isinstance(inner_, DL) and not inner_.args)
            return f"{hp} {base}" if simple else rf"{hp} \left({base}\right)"
        if isinstance(e, DL):
            args = ", ".join(self._vec(a) for a in _print_order(e.args))
            return rf"D^{{{len(e.args) + 1}}}L\left[{args}\right]"
        if isinstance(e, Vec):
            return self._print_Symbol(e)
        return r"\left(" + self.doprint(e) + r"\right)"

    def _print_DL(self, e):
        return self._vec(e)

    def _print_Form(self, e):
        a = _print_order(e.args)
        if not a:
            return "L"
        ks = [_gchain(x) for x in a]
        if len(a) <= 2 and None not in ks:
            k = sum(ks) + len(a) - 1
            return r"\|\nabla L\|^{2}" if k == 0 else \
                rf"\nabla L^{{\top}} {_hpow(k, lambda n: f'H^{{{n}}}')} \nabla L"
        if len(a) == 1:
            return rf"\nabla L^{{\top}} {self._vec(a[0])}"
        return rf"D^{{{len(a)}}}L\left[{', '.join(self._vec(x) for x in a)}\right]"

    def _print_Dot(self, e):
        a, b = e.args
        if a == b:
            return rf"\left\|{self._vec(a)}\right\|^{{2}}"
        return rf"\left\langle {self._vec(a)}, {self._vec(b)} \right\rangle"

    def _print_Symbol(self, e, style="plain"):
        names = {"sigma2": r"\sigma^{2}", "nu": r"\nu", "beta2": r"\beta_{2}"}
        if e.name in names:
            return names[e.name]
        return super()._print_Symbol(e)


def opstr(expr) -> str:
    """Plain-text formula of an operator expression."""
    return OpStrPrinter().doprint(expr)


def oplatex(expr) -> str:
    """LaTeX formula of an operator expression."""
    return OpLatexPrinter().doprint(expr)
