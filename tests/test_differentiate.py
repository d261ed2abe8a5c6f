"""The fast differentiator against sympy.diff."""
import pytest
import sympy as sp

from derive import derivatives
from derive.errors import DeriveInputError

from conftest import rational_point

x, y, z, c = sp.symbols("x y z c", real=True)

LOSSES = [
    (x * y - 1) ** 2 / 2 + (x**2 * y**2 - 1) ** 2 / 4,
    sp.exp(x * y) / 3 + sp.sin(y) * z**2 + sp.log(1 + x**2) * y + sp.tanh(x - z) ** 3,
    sp.sqrt(1 + x**2 + y**2) + sp.erf(x * z) + sp.atan2(y, 1 + x**2) + x**sp.Rational(3, 2) * c,
    sp.Piecewise((x**2, x > 0), (x**3, True)) + y * z + sp.Max(0, y) * 0,
    sum(((i + 1) * x * y - i * z - 1) ** 2 for i in range(20)) + x**4 + c * y**4,
]


@pytest.mark.parametrize("L", LOSSES)
def test_matches_sympy_diff(L):
    params = (x, y, z)
    g, H = derivatives(L, params)
    for i, p in enumerate(params):
        ref = sp.diff(L, p)
        assert sp.simplify(sp.expand(g[i] - ref)) == 0
        for j, q in enumerate(params):
            diff = H[i, j] - sp.diff(L, p, q)
            pt = dict(zip((*params, c), rational_point(i + 3 * j, 4, lo=1, hi=9)))
            assert abs(sp.N(diff.xreplace(pt), 30)) < 1e-25


def test_order_one_and_bad_input():
    (g,) = derivatives(x**3 * y, (x, y), order=1)
    assert g == sp.Matrix([3 * x**2 * y, x**3])
    with pytest.raises(DeriveInputError, match="order"):
        derivatives(x, (x,), order=3)
    with pytest.raises(DeriveInputError, match="loss"):
        derivatives(sp.Matrix([x]), (x,))


def test_a_bare_symbol_is_a_valid_loss():
    g, H = derivatives(x, (x, y))
    assert g == sp.Matrix([1, 0]) and H == sp.zeros(2, 2)
