"""B-series modified equations against literal references and independent checks."""
from fractions import Fraction as Fr

import pytest
import sympy as sp

from derive import _trees
from derive._flowcheck import step_vs_flow
from derive.bseries import METHODS, ButcherTableau, as_method, modified_equation
from derive.instantiate import Instantiator
from derive.modified import elementary_differential
from derive.ops import eta

# A 2-D quintic: enough for the global identities below (orders ≤ 3 read D^kL, k ≤ 5).
WITNESS_PARAMS = _x, _y = sp.symbols("x y", real=True)
WITNESS_LOSS = (sp.Rational(1, 4) * _x**4 + sp.Rational(1, 3) * _x**3 * _y
                - sp.Rational(2, 5) * _x**2 * _y**2 + sp.Rational(1, 7) * _x * _y**3
                + sp.Rational(1, 6) * _y**4 + sp.Rational(1, 10) * _x**5
                - sp.Rational(1, 9) * _x * _y**4 + sp.Rational(1, 2) * _x**2
                - sp.Rational(1, 3) * _x * _y + sp.Rational(3, 4) * _y**2 + _x - sp.Rational(1, 2) * _y)

LEAF = ()
T2 = ((),)              # [•]      F = f'f
T3a = ((), ())          # [•,•]    F = f''(f,f)
T3b = (((),),)          # [[•]]    F = f'f'f


def test_tree_counts_are_oeis_a000081():
    assert [len(_trees.trees_of_size(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]


def test_explicit_euler_matches_hairer_lubich_wanner():
    # HLW (2006) IX.1: f̃ = f − h/2 f'f + h²/12 (f''(f,f) + 4 f'f'f) + h³/8 (...) …
    b = dict(modified_equation(METHODS["euler"], 4))
    assert b[LEAF] == 1 and b[T2] == Fr(-1, 2)
    assert b[T3a] == Fr(1, 12) and b[T3b] == Fr(1, 3)
    # REFERENCE.md: f₃ = −¼ H³g − (1/12) T[g, Hg] − (1/12) H T[g, g], no D⁴L term
    assert b.get(((), (), ()), 0) == 0
    assert b[((), ((),))] == Fr(-1, 12) and b[(((), ()),)] == Fr(-1, 12) and b[((((),),),)] == Fr(-1, 4)


@pytest.mark.parametrize("name, c2, b2", [("midpoint", Fr(1, 2), Fr(1)), ("heun", Fr(1), Fr(1, 2))])
def test_two_stage_methods_match_order_conditions(name, c2, b2):
    # For an order-2 method f₁ = 0 and b(t) = a(t) − e(t) at |t| = 3, with a([•,•]) = b₂c₂²/2,
    # a([[•]]) = 0, and the exact flow's e = 1/6 for both trees (HLW II.1, III.1).
    b = dict(modified_equation(METHODS[name], 3))
    assert T2 not in b
    assert b[T3a] == b2 * c2**2 / 2 - Fr(1, 6)
    assert b[T3b] == Fr(-1, 6)
    assert b[T3a] == {"midpoint": Fr(-1, 24), "heun": Fr(1, 12)}[name]


def test_rk4_modified_field_starts_at_h4():
    b = dict(modified_equation(METHODS["rk4"], 5))
    assert all(_trees.size(t) in (1, 5) for t in b)
    assert any(_trees.size(t) == 5 for t in b)


def test_quadratic_chain_coefficients_are_the_log_series():
    # On a quadratic only tall trees survive; f̃ = (1/η) log(I − ηH) (θ − θ*) exactly.
    z = sp.Symbol("z")
    series = sp.series(-sp.log(1 - z) / z, z, 0, 7).removeO()
    b = dict(modified_equation(METHODS["euler"], 7))
    chain = LEAF
    for n in range(1, 8):
        # F(chain_n) = (−1)^n H^{n−1} g, so coefficient·F = −(1/n) H^{n−1} g
        assert b[chain] * (-1) ** n == -series.coeff(z, n - 1)
        chain = (chain,)


def test_custom_tableau_equals_builtin():
    ralston = ButcherTableau.from_lists([[0, 0], ["2/3", 0]], ["1/4", "3/4"], "ralston")
    b = dict(modified_equation(ralston, 3))
    assert T2 not in b and b.get(T3a, 0) == Fr(3, 4) * Fr(4, 9) / 2 - Fr(1, 6) == 0
    assert b[T3b] == Fr(-1, 6)
    same = ButcherTableau.from_lists([[0, 0], ["1/2", 0]], [0, 1], "mid")
    assert dict(modified_equation(same, 4)) == dict(modified_equation(METHODS["midpoint"], 4))


@pytest.mark.parametrize("bad, match", [
    (lambda: as_method("rk5"), "method: unknown value 'rk5'"),
    (lambda: ButcherTableau.from_lists([[0, 1], [0, 0]], [1, 0]), "explicit"),
    (lambda: ButcherTableau.from_lists([[0]], [1, 0]), "2x2"),
    (lambda: ButcherTableau.from_lists([["a"]], [1]), "rational"),
    (lambda: modified_equation(ButcherTableau.from_lists([[0]], ["1/2"]), 2), "consistent"),
])
def test_bad_methods_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def _field(method, order):
    coeffs = modified_equation(METHODS[method], order + 1)
    expr = sum(sp.Rational(c.numerator, c.denominator) * eta ** (_trees.size(t) - 1) * elementary_differential(t)
               for t, c in coeffs)
    return Instantiator(WITNESS_LOSS, WITNESS_PARAMS, eta).vector(expr)


@pytest.mark.parametrize("method, order", [("euler", 1), ("euler", 2), ("euler", 3), ("heun", 2), ("midpoint", 3)])
def test_flow_map_identity_holds_everywhere(method, order):
    """Full polynomial identity on R² (not just at a point): step − flow = O(η^{order+2})."""
    res = step_vs_flow(list(_field(method, order)), WITNESS_LOSS, WITNESS_PARAMS, METHODS[method], order + 2)
    assert all(r == sp.zeros(2, 1) for r in res[:order + 1])
    assert res[order + 1] != sp.zeros(2, 1)


def test_flow_check_detects_a_wrong_field():
    field = _field("euler", 2)
    wrong = field + eta**2 * sp.Matrix([sp.Rational(1, 1000), 0])     # tiny error at η²
    res = step_vs_flow(list(wrong), WITNESS_LOSS, WITNESS_PARAMS, METHODS["euler"], 4, point=(1, 2))
    assert res[0] == sp.zeros(2, 1) and res[1] == sp.zeros(2, 1) and res[2] != sp.zeros(2, 1)
