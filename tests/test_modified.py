"""Modified losses: literal references, where they exist, and bad input."""
import pytest
import sympy as sp
from conftest import is_zero_matrix, rational_point

import derive
from derive import NotAGradientField, gradient_orders, modified_loss, modified_vector_field
from derive.errors import DeriveInputError
from derive.modified import GradientObstruction

x, y, z, lam, theta = sp.symbols("x y z lambda theta", real=True)
eta = derive.eta


def grad(L, params):
    return sp.Matrix([sp.diff(L, p) for p in params])


LOSSES = [
    ((x * y - 1) ** 2 / 2, (x, y)),
    ((x**2 * y**2 - 1) ** 2 / 4, (x, y)),
    (sp.exp(x * y) + sp.sin(y) * z**2 + sp.log(1 + x**2), (x, y, z)),
    (sp.tanh(x + 2 * y) ** 2 + (x - y) ** 4 / 3, (x, y)),
]


@pytest.mark.parametrize("L, params", LOSSES)
def test_order_one_is_gradient_norm_penalty(L, params):
    """The seed note's result: L_η = L + (η/4)‖∇L‖², on losses of several kinds."""
    g = grad(L, params)
    expected = L + eta / 4 * (g.T * g)[0, 0]
    assert sp.expand(modified_loss(1).on(L, params) - expected) == 0


def test_one_d_quadratic_from_the_seed_note():
    L_eta = modified_loss(1).on(lam * theta**2 / 2, [theta], consts=[lam])
    assert sp.expand(L_eta - (lam + eta * lam**2 / 2) * theta**2 / 2) == 0


def test_modified_field_order_two_on_a_concrete_loss():
    """f₂ = −⅓H²g − (1/12)T[g,g] (REFERENCE.md), against H and T built with sp.hessian/derive_by_array."""
    L, params = LOSSES[1]
    g, H = grad(L, params), sp.hessian(L, params)
    T = sp.Matrix([[sum(sp.diff(L, params[i], params[j], params[k]) * g[j] * g[k]
                        for j in range(2) for k in range(2))] for i in range(2)])
    expected = -g - eta / 2 * H * g - eta**2 * (H * H * g / 3 + T / 12)
    assert is_zero_matrix(modified_vector_field(2).on(L, params) - expected)


def test_where_modified_losses_exist():
    assert gradient_orders(4) == {1: True, 2: False, 3: False, 4: False}
    assert gradient_orders(4, assume="quadratic") == {1: True, 2: True, 3: True, 4: True}
    assert gradient_orders(3, method="heun") == {1: True, 2: False, 3: False}


@pytest.mark.parametrize("order", [2, 3, 4])
def test_no_modified_loss_beyond_order_one(order):
    with pytest.raises(NotAGradientField, match="order 2: the correction is not a gradient field") as info:
        modified_loss(order)
    assert info.value.order == 2
    assert info.value.antisymmetric_part != 0


def test_obstruction_matches_reference_commutator_and_concrete_jacobian():
    """½(J − Jᵀ) of f₂ = (1/12)(MH − HM), M = T[g]: REFERENCE.md writes J − Jᵀ = (1/6)(MH − HM)."""
    L, params = LOSSES[1]
    g, H = grad(L, params), sp.hessian(L, params)
    M = sp.Matrix(2, 2, lambda i, j: sum(sp.diff(L, params[i], params[j], params[k]) * g[k] for k in range(2)))
    f2 = modified_vector_field(2).term(2)
    f2_concrete = derive.instantiate.instantiate(f2, L, params)
    J = f2_concrete.jacobian(params)
    v = sp.Matrix(sp.symbols("v0:2"))
    formula = GradientObstruction(2).on(L, params, v=v)
    pt = dict(zip(params, rational_point(3, 2)))
    assert is_zero_matrix(((J - J.T) / 2 * v - formula).xreplace(pt))
    assert is_zero_matrix(((M * H - H * M) / 12 * v - formula).xreplace(pt))
    assert (J - J.T).xreplace(pt) != sp.zeros(2, 2)


def test_order_two_is_a_gradient_in_one_dimension_and_for_separable_losses():
    for L, params in [(sp.exp(x) + x**4, (x,)), (x**4 + sp.cosh(x) + y**3 * sp.exp(y), (x, y))]:
        J = modified_vector_field(2).on(L, params).jacobian(params)
        assert is_zero_matrix(J - J.T)


def test_quadratic_modified_loss_matches_reference():
    """REFERENCE.md: f₂ = −∇(⅙gᵀHg), f₃ = −∇(⅛gᵀH²g) for quadratics."""
    A = sp.Matrix([[3, 1, 0], [1, 2, sp.Rational(1, 2)], [0, sp.Rational(1, 2), 1]])
    w = sp.Matrix([x, y, z])
    L = (w.T * A * w)[0, 0] / 2 - x + 2 * z
    g = A * w - sp.Matrix([1, 0, -2])
    expected = L + eta / 4 * (g.T * g)[0, 0] + eta**2 / 6 * (g.T * A * g)[0, 0] + eta**3 / 8 * (g.T * A * A * g)[0, 0]
    got = modified_loss(3, assume="quadratic").on(L, (x, y, z))
    assert sp.expand(got - expected) == 0


def test_quadratic_field_is_the_matrix_logarithm():
    order = 6
    field = modified_vector_field(order, assume="quadratic").on(lam * theta**2 / 2, [theta], consts=[lam])[0]
    exact = sp.series(sp.log(1 - eta * lam) / eta * theta, eta, 0, order + 1).removeO()
    assert sp.expand(field - exact) == 0


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_self_checks_pass(order):
    assert all(c.passed for c in modified_vector_field(order).verify())
    assert all(c.passed for c in GradientObstruction(order).verify())


def test_self_check_fails_on_a_corrupted_field():
    f = modified_vector_field(2)
    f.expr = f.expr + eta**2 * derive.DL(derive.DL(derive.grad)) / 100
    assert not all(c.passed for c in f.verify())


def test_modified_loss_self_checks():
    for ml in (modified_loss(1), modified_loss(4, assume="quadratic"), modified_loss(1, method="heun")):
        assert all(c.passed for c in ml.verify()), ml


def test_printing():
    assert str(modified_loss(1)) == "L_η = L + η·‖g‖²/4"
    assert str(modified_vector_field(2)) == "f̃ = -g − η·Hg/2 − η²·(H²g/3 + T[g, g]/12)"
    assert r"\|\nabla L\|^{2}" in modified_loss(1).latex()


@pytest.mark.parametrize("call, match", [
    (lambda: modified_vector_field(0), "order: expected an integer >= 1, got 0"),
    (lambda: modified_vector_field(True), "order"),
    (lambda: modified_vector_field(2.0), "order"),
    (lambda: modified_vector_field(2, method="rk5"), "method: unknown value 'rk5'"),
    (lambda: modified_loss(1, assume="cubic"), "assume: unknown value"),
    (lambda: modified_loss(1).on(sp.Matrix([x, y]), (x, y)), "loss: expected a scalar"),
    (lambda: modified_loss(1).on(x * y + z, (x, y)), r"loss: unknown symbols \['z'\]"),
    (lambda: modified_loss(1).on(sp.Abs(x) + y**2, (x, y)), r"loss: Abs\(x\) is not smooth"),
    (lambda: modified_loss(1).on(sp.sign(x) * y, (x, y)), "not smooth"),
    (lambda: modified_loss(1).on("x**2", (x,)), "loss"),
    (lambda: modified_loss(1).on(x**2, ()), "params"),
    (lambda: modified_loss(1).on(x**2, (x, x)), "params"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(DeriveInputError, match=match):
        call()
