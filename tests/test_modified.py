"""Modified losses: literal references, where they exist, bad input, and verify() catching wrong terms."""
import copy
import random

import pytest
import sympy as sp
from conftest import is_zero_matrix, rational_point
from sympy import QQ

import derive
from derive import NotAGradientField, _trees, gradient_orders, modified_loss, modified_vector_field
from derive._flowcheck import Jets, witness
from derive.calculus import drop_third_and_higher, gradient
from derive.errors import DeriveInputError
from derive.modified import MAX_ORDER, GradientObstruction, ModifiedLoss, elementary_differential
from derive.ops import Dot, Vec

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


def test_self_check_fails_on_a_corrupted_field():
    f = modified_vector_field(2)
    f.expr = f.expr + eta**2 * derive.DL(derive.DL(derive.grad)) / 100
    assert not all(c.passed for c in f.verify())


def test_modified_loss_self_checks():
    for ml in (modified_loss(1), modified_loss(4, assume="quadratic"), modified_loss(1, method="heun"),
               modified_loss(3, method="rk4")):
        assert all(c.passed for c in ml.verify()), ml


def test_printing():
    assert str(modified_loss(1)) == "L_η = L + η·‖g‖²/4"
    assert str(modified_vector_field(2)) == "f̃ = -g − η·Hg/2 − η²·(H²g/3 + T[g, g]/12)"
    assert r"\|\nabla L\|^{2}" in modified_loss(1).latex()


@pytest.mark.parametrize("call, match", [
    (lambda: modified_vector_field(0), r"order: expected an integer in \[1, 6\], got 0"),
    (lambda: modified_vector_field(MAX_ORDER + 1), r"order: expected an integer in \[1, 6\], got 7"),
    (lambda: modified_loss(7, assume="quadratic"), "order"),
    (lambda: GradientObstruction(7), "order"),
    (lambda: gradient_orders(7), "max_order"),
    (lambda: modified_vector_field(True), "order"),
    (lambda: modified_vector_field(2.0), "order"),
    (lambda: modified_vector_field(2, method="rk5"), "method: unknown value 'rk5'"),
    (lambda: modified_loss(1, assume="cubic"), "assume: unknown value"),
    (lambda: modified_loss(1).on(sp.Matrix([x, y]), (x, y)), "loss: expected a scalar"),
    (lambda: modified_loss(1).on(x * y + sp.Symbol("y"), (x, y)), "loss: symbols .'y'. have a parameter's name"),
    (lambda: modified_loss(1).on(sp.Abs(x) + y**2, (x, y)), r"loss: Abs\(x\) is not smooth"),
    (lambda: modified_loss(1).on(sp.sign(x) * y, (x, y)), "not smooth"),
    (lambda: modified_loss(1).on("x**2", (x,)), "loss"),
    (lambda: modified_loss(1).on(x**2, ()), "params"),
    (lambda: modified_loss(1).on(x**2, (x, x)), "params"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(DeriveInputError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# verify() can fail at every order the API accepts: plant a wrong term, see the check fail.

ORDERS = list(range(1, MAX_ORDER + 1))
V = Vec("v")


def failed(checks):
    return [c.name for c in checks if not c.passed]


def bushy(p):
    """The tree with p leaves on the root: F = ±D^{p+1}L[g, …, g]."""
    return tuple([()] * p)


def other_tree(p):
    """A fixed 'random' tree with p + 1 nodes other than the bushy one."""
    return random.Random(p).choice([t for t in _trees.trees_of_size(p + 1) if t != bushy(p)])


def some_combination(p):
    """A fixed 'random' rational combination of all trees with p + 1 nodes."""
    rng = random.Random(100 + p)
    return sp.Add(*[sp.Rational(rng.randint(-9, 9), rng.randint(1, 9)) * elementary_differential(t)
                    for t in _trees.trees_of_size(p + 1)])


def plant(derivation, j, delta, field=None):
    """Add η^j·δ to the order-j term of a ModifiedField or the correction P_j of a ModifiedLoss,
    in both the printed terms and ``expr``; with ``field``, also −η^j∇δ to its field."""
    if isinstance(derivation, ModifiedLoss):
        derivation.corrections[j - 1] += delta
        if field is not None:
            plant(derivation.field, j, field)
    else:
        derivation.terms[j] += delta
    derivation.expr += eta**j * delta
    return derivation


def flow_check(field):
    return f"{field.method.name} step − time-η flow = O(η^{field.order + 2}) at a random rational point"


@pytest.mark.parametrize("order", ORDERS)
def test_self_checks_pass(order):
    assert failed(modified_vector_field(order).verify()) == []
    assert failed(GradientObstruction(order).verify()) == []
    assert failed(modified_loss(order, assume="quadratic").verify()) == []
    assert failed(modified_vector_field(order, assume="quadratic").verify()) == []


@pytest.mark.parametrize("method, order", [("midpoint", 3), ("heun", 4), ("rk3", 4), ("rk4", 4), ("rk4", 1)])
def test_self_checks_pass_for_other_methods(method, order):
    """Including rk4 at order 1, whose next term f₂ vanishes: the remainder is then 0, as predicted."""
    assert failed(modified_vector_field(order, method).verify()) == []
    assert failed(GradientObstruction(order, method).verify()) == []


@pytest.mark.parametrize("order, kind", [(p, k) for p in ORDERS for k in ("bushy", "other", "mixed")
                                         if not (p == 1 and k == "other")])
def test_a_wrong_term_fails_verification_at_every_order(order, kind):
    """δ = c·D^{p+1}L[g, …, g], another tree with p + 1 nodes, or a combination of all of them, added
    to f_p (through the public terms and expr): the flow check fails at η^{p+1}. At order 5 the bushy
    case is the wrong D⁶L term that the former quintic witness (D⁶L = 0) let through."""
    delta = {"bushy": lambda: elementary_differential(bushy(order)) / 997,
             "other": lambda: elementary_differential(other_tree(order)) / 997,
             "mixed": lambda: some_combination(order)}[kind]()
    field = plant(modified_vector_field(order), order, delta)
    checks = field.verify()
    assert flow_check(field) in failed(checks)
    assert f"k = [{order + 1}]" in next(c.detail for c in checks if c.name == flow_check(field))
    assert "formula = Σ η^j f_j, the printed terms" not in failed(checks)


@pytest.mark.parametrize("order", ORDERS)
def test_a_wrong_lower_term_fails_verification(order):
    """The wrong term need not be the top one: a wrong f_j, j < p, shows at η^{j+1}."""
    j = random.Random(order).randint(1, order)
    field = plant(modified_vector_field(order), j, elementary_differential(other_tree(j) if j > 1 else bushy(1)) / 7)
    checks = field.verify()
    assert f"k = [{j + 1}" in next(c.detail for c in checks if c.name == flow_check(field))


@pytest.mark.parametrize("method, order, j", [("midpoint", 3, 1), ("heun", 4, 4), ("rk3", 4, 2), ("rk4", 4, 4),
                                              ("rk4", 3, 2)])
def test_a_wrong_term_fails_verification_for_other_methods(method, order, j):
    """Also where the method's true f_j is 0 (rk4: f₁ = f₂ = f₃ = 0)."""
    field = plant(modified_vector_field(order, method), j, elementary_differential(bushy(j)) / 997)
    assert flow_check(field) in failed(field.verify())


@pytest.mark.parametrize("order", ORDERS)
def test_a_wrong_term_fails_verification_for_quadratic_losses(order):
    chain = derive.grad
    for _ in range(order):
        chain = derive.DL(chain)                                 # H^order g
    field = plant(modified_vector_field(order, assume="quadratic"), order, chain / 997)
    assert flow_check(field) in failed(field.verify())


def test_a_field_that_disagrees_with_its_printed_terms_fails():
    field = modified_vector_field(3)
    field.terms[3] += elementary_differential(bushy(3))
    assert failed(field.verify()) == ["formula = Σ η^j f_j, the printed terms"]


@pytest.mark.parametrize("order", ORDERS)
def test_a_wrong_obstruction_fails_verification(order):
    """½(J − Jᵀ)v plus c·D^{j+2}L[g, …, g, v] (or v grafted on another tree) is refused."""
    right = GradientObstruction(order)
    for delta in (derive.DL(*[derive.grad] * order, V),
                  derive.DL(*_positive(other_tree(order) if order > 1 else bushy(1)).args, V)):
        obstruction = copy.copy(right)
        obstruction.expr = right.expr + delta / 997
        assert "formula = ½(J − Jᵀ)v of the concrete Jacobian (exact, for every v)" in failed(obstruction.verify())


def _positive(t):
    return derive.DL(*[_positive(c) for c in t])


def _loss_checks(ml):
    return {"identity": "−∇L_η = f̃ as an operator identity (any n)",
            "jets": "−∇L_η = f̃ on a generic loss (exact jets at a random rational point)",
            "flow": f"gradient flow on L_η matches the {ml.method.name} step to O(η^{ml.order + 2})"}


def test_a_wrong_modified_loss_fails_verification():
    """L + η‖g‖²/4 with 1/4 changed: every check refuses it; changed together with its field
    (so that −∇L_η = f̃ still holds), the flow check alone refuses it."""
    names = _loss_checks(modified_loss(1))
    alone = plant(modified_loss(1), 1, Dot(derive.grad, derive.grad) / 997)
    assert set(names.values()) <= set(failed(alone.verify()))
    delta = Dot(derive.grad, derive.grad) / 997
    consistent = plant(modified_loss(1), 1, delta, field=-gradient(delta))
    assert failed(consistent.verify()) == [names["flow"]]


@pytest.mark.parametrize("order", ORDERS)
def test_a_wrong_quadratic_modified_loss_fails_verification(order):
    """A wrong correction c·gᵀH^{j−1}g at a 'random' order j ≤ p, with or without its field."""
    j = random.Random(order).randint(1, order)
    a = derive.grad
    for _ in range(j - 1):
        a = derive.DL(a)                                         # H^{j−1} g
    delta = Dot(derive.grad, a) / 997
    names = _loss_checks(modified_loss(order, assume="quadratic"))
    alone = plant(modified_loss(order, assume="quadratic"), j, delta)
    assert {names["jets"], names["flow"]} <= set(failed(alone.verify()))
    consistent = plant(modified_loss(order, assume="quadratic"), j, delta,
                       field=-drop_third_and_higher(gradient(delta)))
    assert failed(consistent.verify()) == [names["flow"]]


def test_a_wrong_modified_loss_fails_verification_for_rk4():
    """rk4's modified loss of order 3 is L itself; a correction η²·c·gᵀHg is caught by the flow check."""
    delta = derive.Form(derive.grad, derive.grad) / 997
    ml = plant(modified_loss(3, method="rk4"), 2, delta, field=-gradient(delta))
    assert failed(ml.verify()) == [_loss_checks(ml)["flow"]]


# ---------------------------------------------------------------------------------------------
# Why the witnesses suffice: no combination of the terms a check reads vanishes on them.

P61 = 2**61 - 1


def _rank_mod_p(rows):
    """Rank over GF(p) of a list of rational rows; it bounds the rank over Q from below."""
    rows = [[int(c.numerator) * pow(int(c.denominator), -1, P61) % P61 for c in r] for r in rows]
    rank, cols = 0, len(rows[0])
    for col in range(cols):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][col]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inv = pow(rows[rank][col], -1, P61)
        rows[rank] = [x * inv % P61 for x in rows[rank]]
        for i in range(len(rows)):
            if i != rank and rows[i][col]:
                f = rows[i][col]
                rows[i] = [(x - f * y) % P61 for x, y in zip(rows[i], rows[rank])]
        rank += 1
    return rank


def _values(formulas, loss, params, points, inputs=()):
    """Rows: for each point, output coordinate (and coefficient of each v_k), the formulas' values."""
    rows = []
    for pt in points:
        jets = Jets(loss, params, pt, inputs=inputs)
        vals = [jets.vector(f, 0) for f in formulas]
        monomials = [jets.R.one.monoms()[0]] if not inputs else \
            [tuple(int(i == len(params) + 1 + k) for i in range(len(jets.R.gens))) for k in range(len(params))]
        for i in range(len(params)):
            for m in monomials:
                rows.append([v[i].get(m, QQ(0)) for v in vals])
    return rows


def _points(count, n, seed=0):
    return [rational_point(seed + k, n) for k in range(count)]


def _with_v(t):
    """Formulas of t with one leaf replaced by the input v (each distinct labelling once)."""
    if t == ():
        return {V}
    out = set()
    for i, c in enumerate(t):
        for c_v in _with_v(c):
            out.add(derive.DL(*[_positive(d) for d in t[:i]], c_v, *[_positive(d) for d in t[i + 1:]]))
    return out


@pytest.mark.parametrize("order", ORDERS)
def test_witness_separates_the_elementary_differentials(order):
    """On the order-p witness the F(t), |t| = p + 1, are linearly independent functions (exact rank
    over several points), so no wrong combination at order p vanishes identically; each F(t) is non-zero
    at the point verify() uses."""
    trees = _trees.trees_of_size(order + 1)
    formulas = [elementary_differential(t) for t in trees]
    loss, params = witness(order + 3, 3)
    count = len(trees) // len(params) + 3
    assert _rank_mod_p(_values(formulas, loss, params, _points(count, 3))) == len(trees)
    pt = derive.modified._random_point(0, 3)
    assert all(any(c) for c in zip(*_values(formulas, loss, params, [pt])))


def test_two_variables_are_not_enough_at_order_six():
    """In 2-D the 48 trees with 7 nodes span only 46 dimensions (two identities hold for every loss),
    so a wrong combination at order 6 could vanish identically: why the witness has 3 variables."""
    formulas = [elementary_differential(t) for t in _trees.trees_of_size(7)]
    loss, params = witness(9, 2)
    assert _rank_mod_p(_values(formulas, loss, params, _points(26, 2))) == 46


@pytest.mark.parametrize("order", [pytest.param(j, marks=pytest.mark.slow) if j == 6 else j for j in ORDERS])
def test_witness_separates_the_terms_of_the_obstruction(order):
    """The terms of ½(J − Jᵀ)v for f_j are trees with j + 2 nodes, one leaf v; they are independent on
    the witness GradientObstruction(j) uses (3 variables up to j = 5, 4 at j = 6)."""
    formulas = sorted({f for t in _trees.trees_of_size(order + 2) for f in _with_v(t)}, key=sp.default_sort_key)
    n = 3 if order <= 5 else 4
    loss, params = witness(order + 3, n)
    count = len(formulas) // n**2 + 3
    assert _rank_mod_p(_values(formulas, loss, params, _points(count, n), inputs=("v",))) == len(formulas)


def test_jets_agree_with_instantiate():
    """The jet evaluator verify() uses, against the Instantiator behind .on(): Taylor coefficients of
    weight ≤ 2 (in x − point and η) of the order-2 field, the order-1 modified loss and an obstruction."""
    loss, params = witness(4, 2)
    pt = rational_point(7, 2)
    jets = Jets(loss, params, pt, inputs=("v",))
    v = sp.symbols("v0:2")
    gens = list(jets.x) + [jets.eta] + list(jets.inputs["v"])
    K = 2
    for expr in (modified_vector_field(2).expr, modified_loss(1).expr, GradientObstruction(2).expr):
        got = jets.value(expr, K)
        full = derive.instantiate.instantiate(expr, loss, params, vectors={"v": sp.Matrix(v)})
        got, full = (got, list(full)) if isinstance(got, list) else ([got], [full])
        for g, f in zip(got, full, strict=True):
            shifted = sp.Poly(sp.expand(f.xreplace({p: p + c for p, c in zip(params, pt)})), *params, eta, *v)
            want = jets.R.zero
            for m, c in shifted.terms():
                if sum(m[:3]) <= K:
                    want += jets.R(QQ(int(c.p), int(c.q))) * sp.prod([x**e for x, e in zip(gens, m)])
            assert g == want


def test_verify_after_a_planted_term_is_not_fooled_by_shared_jets():
    """verify() reuses the jets of the witness between calls: a wrong term does not stick."""
    delta = elementary_differential(other_tree(4)) / 997
    assert flow_check(modified_vector_field(4)) in failed(plant(modified_vector_field(4), 4, delta).verify())
    assert failed(modified_vector_field(4).verify()) == []
    assert flow_check(modified_vector_field(4)) in failed(plant(modified_vector_field(4), 4, -delta).verify())
