"""Taylor expansion, ∇S = D³L[u,u], and central flows against independent oracles."""
import numpy as np
import pytest
import sympy as sp
from conftest import is_zero_matrix

import derive
from derive import central_flow, central_flow_multi, gradient_taylor, sharpness_gradient
from derive.errors import DeriveInputError

x, y, z, s = sp.symbols("x y z s", real=True)
eta = derive.eta


def test_taylor_on_a_concrete_loss_matches_sympy_series():
    L = sp.exp(x * y) + sp.sin(x) * y**3
    u = sp.Matrix([sp.Rational(2, 3), -1])
    shifted = sp.Matrix([sp.diff(L, p) for p in (x, y)]).xreplace({x: x + s * u[0], y: y + s * u[1]})
    series = shifted.applyfunc(lambda e: sp.series(e, s, 0, 3).removeO())
    got = gradient_taylor(3).on(L, (x, y), u=u).xreplace({derive.taylor.x: s})
    assert is_zero_matrix((got - series).applyfunc(sp.expand))


def test_taylor_terms_and_printing():
    t = gradient_taylor(4)
    assert str(t) == "∇L(w + x u) = g + x·Hu + x²·T[u, u]/2 + x³·D⁴L[u, u, u]/6 + O(x⁴)"
    assert all(c.passed for c in t.verify())


def test_sharpness_gradient_against_float64_finite_differences():
    """∇λ_max by central differences of numpy's eigvalsh, vs D³L[u, u] with numpy's eigenvector."""
    L = x**4 / 4 + x**2 * y + sp.cos(y) * z**2 + y**2 * z + 2 * z**2
    params = (x, y, z)
    H = sp.lambdify(params, sp.hessian(L, params), "numpy")
    w = np.array([0.7, -0.3, 1.1])
    evals, evecs = np.linalg.eigh(H(*w))
    u = evecs[:, -1]
    formula = sharpness_gradient().on(L, params, u=sp.Matrix(u))
    got = np.array([float(e.xreplace(dict(zip(params, w)))) for e in formula])
    h = 1e-5
    fd = np.array([(np.linalg.eigvalsh(H(*(w + h * e)))[-1] - np.linalg.eigvalsh(H(*(w - h * e)))[-1]) / (2 * h)
                   for e in np.eye(3)])
    assert np.allclose(got, fd, rtol=1e-6, atol=1e-8)
    assert str(sharpness_gradient()) == "∇S = T[u, u]"
    assert all(c.passed for c in sharpness_gradient().verify(seed=5))


def normal_form():
    zs = sp.Symbol("z_star", positive=True)
    return sp.Rational(1, 2) * (1 + z) * x**2 + sp.Rational(1, 2) * (z - zs) ** 2, zs


def test_sigma2_on_the_normal_form_model():
    """REFERENCE.md: (±σ, z_e), z_e = 2/η − 1, σ² = 2(z* − z_e) is an exact GD 2-cycle."""
    L, zs = normal_form()
    cf = central_flow()
    ze = 2 / eta - 1
    sig2 = cf.sigma2.on(L, (x, z), consts=[zs], u=sp.Matrix([1, 0])).xreplace({x: 0, z: ze})
    assert sp.simplify(sig2 - 2 * (zs - ze)) == 0
    # predicted loss = GD's loss averaged over the 2-cycle (exactly, on this model)
    pred = cf.predicted_loss.on(L, (x, z), consts=[zs]).xreplace({x: 0, z: ze})
    pred = pred.xreplace({derive.central.sigma2: sig2})
    cycle = L.xreplace({x: sp.sqrt(sig2), z: ze})
    assert sp.simplify(pred - cycle) == 0
    # the velocity at the centre vanishes: the central flow sits at (0, z_e)
    vel = cf.on(L, (x, z), consts=[zs], u=sp.Matrix([1, 0])).xreplace({x: 0, z: ze})
    assert is_zero_matrix(vel.applyfunc(sp.simplify))


def test_central_flow_is_projected_gradient_flow_numerically():
    rng = np.random.default_rng(0)
    g, n = rng.normal(size=6), rng.normal(size=6)
    sig2 = 2 * (-g @ n) / (n @ n)
    vel = -0.1 * (g + sig2 / 2 * n)
    P = np.eye(6) - np.outer(n, n) / (n @ n)
    assert np.allclose(vel, -0.1 * P @ g) and abs(n @ vel) < 1e-12 and g @ vel <= 0
    assert str(central_flow().sigma2) == "σ² = -2*⟨g, T[u, u]⟩/‖T[u, u]‖²"


@pytest.mark.parametrize("k", [1, 2, 3])
def test_central_flow_checks(k):
    assert all(c.passed for c in central_flow().verify())
    m = central_flow_multi(k)
    assert all(c.passed for c in m.verify())
    p = k * (k + 1) // 2
    assert m.B.shape == (p, p) and len(m.conditions) == 3 and len(m.velocity_basis[1]) == p


def test_multi_reduces_to_single_when_second_direction_inactive():
    m = central_flow_multi(2)
    u1 = derive.Vec("u1")
    sig2 = central_flow().sigma2.expr.xreplace({derive.Vec("u"): u1})
    sig2 = sig2.xreplace({derive.Dot(derive.grad, derive.DL(derive.Vec("u"), derive.Vec("u"))):
                          derive.Dot(derive.grad, derive.DL(u1, u1))})
    Q = m.Q.xreplace({m.X[0, 0]: sig2, m.X[0, 1]: 0, m.X[1, 1]: 0})
    assert sp.simplify(Q[0, 0]) == 0


def test_bad_k_and_inputs():
    with pytest.raises(DeriveInputError, match="k: expected an integer"):
        central_flow_multi(0)
    with pytest.raises(DeriveInputError, match="k: expected an integer"):
        central_flow_multi(9)
    with pytest.raises(DeriveInputError, match="vectors"):
        central_flow().sigma2.on(x**2 * y**2, (x, y), w=sp.Matrix([1, 0]))
    with pytest.raises(ValueError, match="u"):
        central_flow().sigma2.on(x**2 * y**2, (x, y), u=sp.Matrix([1, 0, 0]))


def test_multi_velocity_instantiates_on_a_concrete_loss():
    """dw/dτ = −η[∇L + ½ Σ X_ij ∇(u_iᵀHu_j)] against SymPy gradients of u_iᵀH(w)u_j."""
    L = x**4 / 4 + x**2 * y**2 + y**3 / 3 + x * y
    m = central_flow_multi(2)
    u1, u2 = sp.Matrix([1, 0]), sp.Matrix([0, 1])
    vel = m.on(L, (x, y), eta=sp.Rational(1, 5), u1=u1, u2=u2)
    H = sp.hessian(L, (x, y))
    g = sp.Matrix([sp.diff(L, p) for p in (x, y)])
    X11, X12, X22 = m.X[0, 0], m.X[0, 1], m.X[1, 1]
    grad_of = lambda s: sp.Matrix([sp.diff(s, p) for p in (x, y)])  # noqa: E731
    inner_sum = (X11 * grad_of((u1.T * H * u1)[0]) + 2 * X12 * grad_of((u1.T * H * u2)[0])
                 + X22 * grad_of((u2.T * H * u2)[0]))
    expected = -sp.Rational(1, 5) * (g + inner_sum / 2)
    assert is_zero_matrix(vel - expected)


# ------------------------------------------- the formula's own symbols never merge with the user's
HOSTILE = ["sigma2", "X11", "X12", "X22", "u_x", "u1_x", "eta", "x", "S", "_sigma2", "_eta", "Dummy_1"]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("assumptions", [{"real": True}, {"positive": True}, {}])
def test_formula_symbols_never_merge_with_user_symbols(name, assumptions):
    """Issue 8: a parameter named sigma2 merged with σ² (predicted_loss.on gave sigma2**2 + 2*sigma2 + x**2)."""
    p = sp.Symbol(name, **assumptions)
    w = x if name != "x" else y
    L = p**2 + w**2
    cf = central_flow()
    got = cf.predicted_loss.on(L, [w, p], eta=sp.Rational(1, 2))
    assert sp.expand(got - (L + 2 * derive.central.sigma2)) == 0        # E[L] = L + σ²/η
    assert p in got.free_symbols and derive.central.sigma2 in got.free_symbols
    m = central_flow_multi(2)
    vel = m.on(L, [w, p], eta=sp.Rational(1, 5))           # default vectors: Dummy columns u1_<param>, u2_<param>
    assert not (set(m.packed) & {p, w})
    assert (vel + sp.Rational(1, 5) * sp.Matrix([2 * w, 2 * p])).expand() == sp.zeros(2, 1)   # T = 0: −η∇L
    field = derive.modified_vector_field(1).on(L, [w, p])  # f̃ = −g − ηHg/2 = −(1 + η)(2w, 2p) for H = 2I
    assert (field + (1 + derive.eta) * sp.Matrix([2 * w, 2 * p])).expand() == sp.zeros(2, 1)


def test_user_eta_is_not_the_learning_rate():
    """A user's own Symbol('eta', positive=True) is a constant of the loss, not derive's η."""
    user_eta = sp.Symbol("eta", positive=True)
    L = user_eta * x**2 / 2
    got = derive.modified_loss(1).on(L, [x])
    assert sp.expand(got - (L + derive.eta * user_eta**2 * x**2 / 4)) == 0
    assert sp.expand(derive.modified_loss(1).on(L, [x], eta=sp.Rational(1, 10)) - (L + user_eta**2 * x**2 / 40)) == 0


def test_undeclared_symbols_are_constants_kept_symbolic():
    """SymPy's convention: symbols other than params are constants (issue 8: this raised 'unknown symbols')."""
    lam, theta = sp.symbols("lambda theta", real=True)
    got = derive.modified_loss(1).on(lam * theta**2 / 2, [theta])
    assert sp.expand(got - (lam * theta**2 / 2 + derive.eta * lam**2 * theta**2 / 4)) == 0
    assert lam in got.free_symbols
    assert sp.expand(got - derive.modified_loss(1).on(lam * theta**2 / 2, [theta], consts=[lam])) == 0
    with pytest.raises(DeriveInputError, match="consts: .*also appear in params"):
        derive.modified_loss(1).on(lam * theta**2, [theta], consts=[theta])
    with pytest.raises(DeriveInputError, match="have a parameter's name but other assumptions"):
        derive.modified_loss(1).on(sp.Symbol("theta") ** 2, [theta])
    for bad in (-1, 0, sp.oo, sp.I):
        with pytest.raises(DeriveInputError, match="eta"):
            derive.modified_loss(1).on(theta**2, [theta], eta=bad)
