"""Tests for derive.codegen.build_function (SymPy -> JAX code generation).

Oracles are independent of the code under test: SymPy's own high-precision
evaluation (`evalf`, 30 digits), JAX autodiff of the generated scalar, the same
loss written by hand in jax.numpy, and plain Python loops.

The golden module tests/golden/quartic_kernel.py is regenerated and diffed byte
for byte; after an intended change regenerate it with
`GDFLOWS_REGENERATE_GOLDEN=1 python -m pytest tests/test_codegen.py -k golden`.
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import os
import pkgutil
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import derive.codegen
from conftest import TOL_F64
from derive.codegen import build_function

GOLDEN = Path(__file__).parent / "golden" / "quartic_kernel.py"


def assert_close(actual, expected, rtol=TOL_F64, atol=TOL_F64):
    """Generated float64 values against a float64-or-better oracle."""
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol)


def sympy_values(exprs, subs):
    """30-digit SymPy values of a flat list of expressions."""
    return [float(sp.N(e, 30, subs=subs)) for e in exprs]


# ------------------------------------------------------------------ problems
X, Y, Z = sp.symbols("x y z", real=True)
A = sp.Symbol("a", positive=True)


def special_loss():
    """Elementary and special functions, Piecewise, Min/Max, rationals, big integers."""
    big = sp.Integer(10) ** 30
    return (sp.exp(-X**2 / 3) + sp.log(1 + Y**2) + sp.tanh(X * Y) + sp.sqrt(2 + Z**2)
            + sp.Rational(7, 3) * X**3 + sp.Rational(1, 7) * X**-2 + A * X**5
            + sp.Piecewise((X**2, X < Y), (sp.sin(X) * Y, True))
            + sp.erf(X - Z) + sp.erfc(Y / 2) + sp.gamma(1 + Z**2) + sp.loggamma(2 + X**2)
            + sp.digamma(3 + Y**2) + sp.polygamma(1, 2 + Z**2)
            + sp.Min(X, Y, Z) + sp.Max(X * Y, A) + sp.Abs(X - A) + sp.pi * sp.cos(Z)
            + sp.E**Y / 10 + 1 / (1 + A**2 + X**2) ** sp.Rational(3, 2)
            + big * X * Y / (big + 1))


def least_squares(n_res, n_par, seed=0):
    """Small version of the benchmark loss: long sums exercise expansion and matmul batching."""
    rng = np.random.default_rng(seed)
    A_, b_, c_ = rng.standard_normal((n_res, n_par - 1)), rng.standard_normal(n_res), rng.uniform(0.5, 1.5, n_par)
    th = sp.symbols(f"t0:{n_par}", real=True)
    L = sp.Add(*[(sp.Add(*[sp.Float(A_[i, j]) * th[j] * th[j + 1] for j in range(n_par - 1)])
                  - sp.Float(b_[i])) ** 2 for i in range(n_res)])
    L += sp.Add(*[sp.Float(c_[j]) * th[j] ** 4 for j in range(n_par)])

    def loss_jnp(t):
        r = jnp.asarray(A_) @ (t[:-1] * t[1:]) - jnp.asarray(b_)
        return jnp.sum(r * r) + jnp.sum(jnp.asarray(c_) * t**4)

    return L, list(th), loss_jnp


def random_points(n, dim, seed, low=-1.5, high=1.5):
    return np.random.default_rng(seed).uniform(low, high, (n, dim))


# --------------------------------------------------------- (1) values vs SymPy
@pytest.mark.parametrize("cse", [True, False])
def test_values_match_sympy_high_precision(x64, cse):
    L = special_loss()
    grad = sp.Matrix([L.diff(v) for v in (X, Y, Z)])
    fn = jax.jit(build_function([L, grad], [X, Y, Z], [A], cse=cse).fn)
    for point, a in zip(random_points(4, 3, seed=1), [0.7, 1.3, 2.0, 0.9]):
        subs = dict(zip((X, Y, Z, A), map(float, (*point, a))))
        value, g = fn(point, a=a)
        assert_close(value, sympy_values([L], subs)[0])
        assert_close(g, sympy_values(list(grad), subs))


@pytest.mark.parametrize("cse", [True, False])
def test_heaviside_sign_and_constants(x64, cse):
    assert np.isnan(build_function(sp.sqrt(X) + X**1.5, [X], cse=cse)([-1.0]))  # real domain, as numpy
    assert np.isnan(build_function(sp.Piecewise((X, X > 0)), [X], cse=cse)([-1.0]))  # no branch
    e = sp.Matrix([sp.Heaviside(X), sp.Heaviside(X, 0), sp.sign(X - Y), sp.pi + sp.E, sp.Rational(1, 3),
                   X * sp.Rational(2, 3) ** 40, X * sp.Integer(10) ** 30, sp.Max(X, 3 * sp.Integer(10) ** 40),
                   sp.Min(X, Y, sp.Rational(1, 4)),
                   sp.Piecewise((1, sp.And(X > 0, Y > 0)), (2, sp.Or(X < -1, Y < -1)),
                                (3, sp.Not(X > sp.Rational(1, 4))), (4 * X, True))])
    gf = build_function(e, [X, Y], cse=cse)
    for x, y in [(0.5, 0.1), (-2.0, 0.1), (0.0, 1.0), (0.5, -0.5)]:
        assert_close(gf([x, y]), sympy_values(list(e), {X: x, Y: y}))


def test_no_expansion_where_it_would_cancel(x64):
    """Rewrites must keep accuracy where a loss nearly vanishes (expanded forms would not)."""
    x = 1 + 1e-6
    for e in [(X**2 - 1) ** 2 / 4, sp.Add(*[(X**2 - 1) ** 2 * Y**k for k in range(10)])]:
        gf = build_function(e, [X, Y])
        assert_close(gf([x, 0.5]), sympy_values([e], {X: x, Y: 0.5})[0], rtol=1e-9, atol=0)
    th = sp.symbols("s0:10")
    smooth = sp.Add(*[(th[j] - th[j + 1]) ** 2 for j in range(9)])
    point = 0.5 + 1e-7 * np.random.default_rng(8).standard_normal(10)
    expected = sympy_values([smooth], dict(zip(th, map(float, point))))[0]
    assert_close(build_function(smooth, th)(point), expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("n_res, n_par, hessian", [(20, 4, True), (10, 9, False)])
def test_least_squares_matches_sympy_and_autodiff(x64, n_res, n_par, hessian):
    """20 residuals: Gram sums in the Hessian are expanded; 9 params: residuals become one matmul."""
    L, th, loss_jnp = least_squares(n_res, n_par)
    grad = sp.Matrix([L.diff(t) for t in th])
    exprs = [L, grad] + ([sp.hessian(L, th)] if hessian else [])
    extra = sp.Add(*[(j + 1) * th[j] * th[j + 1] for j in range(n_par - 1)])  # joins the residuals' block
    gf = build_function(exprs + [extra], th)
    assert "jnp.dot(" in gf.source  # the batched long-sum path is exercised
    assert hessian or "[0:10], jnp.asarray" in gf.source  # ... and reuses part of a block
    fn, autodiff = jax.jit(gf.fn), jax.jit(lambda t: (jax.grad(loss_jnp)(t), jax.hessian(loss_jnp)(t)))
    for point in random_points(2, len(th), seed=2):
        out = fn(point)
        subs = dict(zip(th, map(float, point)))
        assert_close(out[0], sympy_values([L], subs)[0])
        assert_close(out[1], sympy_values(list(grad), subs))
        g_ad, h_ad = autodiff(jnp.asarray(point))
        assert_close(out[1], g_ad)
        assert_close(out[-1], sympy_values([extra], subs)[0])
        if hessian:
            assert_close(out[2], np.reshape(sympy_values(list(exprs[2]), subs), (n_par, n_par)))
            assert_close(out[2], h_ad)


# ------------------------------------------ (2) codegen commutes with d/dtheta
def test_jax_grad_of_generated_scalar_equals_generated_gradient(x64):
    L = (sp.exp(-X**2 / 3) * sp.cos(Y) + sp.log(1 + Y**2 + Z**2) * A + sp.tanh(X * Y * Z)
         + sp.erf(X - Z) + sp.loggamma(2 + X**2) + sp.sqrt(1 + X**2 + Y**4) + X**3 * Y / 5)
    params = [X, Y, Z]
    grad = sp.Matrix([L.diff(v) for v in params])
    hess = sp.hessian(L, params)
    f = build_function(L, params, [A])
    df = build_function([grad, hess], params, [A])
    derived = jax.jit(lambda t, a: (jax.grad(f.fn)(t, a), jax.hessian(f.fn)(t, a),
                                    jax.jacfwd(lambda s: df.fn(s, a)[0])(t)))
    for point in random_points(3, 3, seed=3):
        g, h = df(point, a=1.7)
        g_ad, h_ad, jac_g = derived(jnp.asarray(point), 1.7)
        assert_close(g_ad, g)
        assert_close(h_ad, h)
        assert_close(jac_g, h)


# ----------------------------------------------------------- (3) jit and vmap
def test_jit_and_vmap_agree_with_python_loop(x64):
    L, th, _ = least_squares(n_res=10, n_par=3, seed=4)
    a = sp.Symbol("a")
    L = L * a + a**2 * th[0]
    gf = build_function([L, sp.Matrix([L.diff(t) for t in th])], th, [a])
    thetas = random_points(6, 3, seed=5)
    a_values = np.linspace(0.5, 2.0, 6)
    loop = [gf(t, a=av) for t, av in zip(thetas, a_values)]
    batched = jax.jit(jax.vmap(gf.fn))(thetas, a_values)
    for k in range(2):
        assert_close(batched[k], np.stack([out[k] for out in loop]), rtol=1e-13, atol=1e-13)
    fixed_theta = jax.jit(jax.vmap(lambda av: gf.fn(thetas[0], a=av)))(a_values)
    loop_a = [gf(thetas[0], a=av) for av in a_values]
    assert_close(fixed_theta[1], np.stack([out[1] for out in loop_a]), rtol=1e-13, atol=1e-13)
    fixed_a = jax.vmap(gf.fn, in_axes=(0, None))(thetas, 0.75)
    assert_close(fixed_a[0], [gf(t, a=0.75)[0] for t in thetas], rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------ (4) shapes
def test_output_shapes():
    exprs = [X * Y, sp.Matrix([X, Y, 1]), sp.Matrix([[X, 1, 2], [Y, X * Y, 0]]), sp.Matrix([[X, Y]]),
             sp.Array([[[X, 1], [Y, 2]], [[3, X * Y], [0, X]]])]
    gf = build_function(exprs, [X, Y])
    shapes = [(), (3,), (2, 3), (1, 2), (2, 2, 2)]
    out = gf([2.0, 3.0])
    assert isinstance(out, tuple) and [o.shape for o in out] == shapes
    np.testing.assert_array_equal(out[2], [[2.0, 1.0, 2.0], [3.0, 6.0, 0.0]])
    np.testing.assert_array_equal(out[4], [[[2.0, 1.0], [3.0, 2.0]], [[3.0, 6.0], [0.0, 2.0]]])
    batched = jax.vmap(gf.fn)(jnp.ones((5, 2)))
    assert [o.shape for o in batched] == [(5, *s) for s in shapes]
    single = build_function(sp.Matrix([[1, 0], [0, 2]]), [X])  # constant output, still batched
    assert jax.vmap(single.fn)(jnp.ones((4, 1))).shape == (4, 2, 2)
    one = build_function([X + Y], [X, Y])
    assert isinstance(one([1.0, 2.0]), tuple) and len(one([1.0, 2.0])) == 1
    assert build_function(sp.Matrix([X]), [X])([3.0]).shape == (1,)


# ---------------------------------------------- (5) inspectable source, tracebacks
def test_source_is_inspectable_and_shows_temporaries():
    e = sp.exp(X * Y) + sp.sin(X * Y) + (X * Y) ** 2
    gf = build_function([e, e.diff(X)], [X, Y], name="shared")
    assert inspect.getsource(gf.fn) in gf.source
    assert inspect.getsource(gf.fn).startswith("def shared(theta):")
    assert "_x0 = " in gf.source  # x*y is computed once
    assert "_x0 = " not in build_function([e, e.diff(X)], [X, Y], cse=False).source


def test_traceback_shows_generated_lines():
    gf = build_function(X * A, [X], [A], name="tb_kernel")
    for call, error in [(lambda: gf([1.0, 2.0], a=1.0), ValueError),
                        (lambda: gf([1.0], a=jnp.ones(3)), ValueError),
                        (lambda: gf([1.0], a="text"), TypeError)]:
        with pytest.raises(error) as info:
            call()
        frames = [f for f in traceback.extract_tb(info.tb) if f.filename == gf.filename]
        assert frames and all(f.line for f in frames)
        assert frames[-1].line in gf.source.splitlines()[frames[-1].lineno - 1]


# ------------------------------------------------------------ (6) golden file
def quartic_kernel():
    x, y, a = sp.symbols("x y a")
    L = (x**2 - 1) ** 2 / 4 + a * x * y + y**2 / 2
    grad = sp.Matrix([L.diff(v) for v in (x, y)])
    return build_function([L, grad, sp.hessian(L, (x, y))], [x, y], [a], name="quartic_kernel",
                          source_note="tests/test_codegen.py::quartic_kernel"), (x, y, a), L


def test_golden_module_regenerates_byte_identically(tmp_path):
    gf, _, _ = quartic_kernel()
    if os.environ.get("GDFLOWS_REGENERATE_GOLDEN"):
        gf.write(GOLDEN)
    written = gf.write(tmp_path / "quartic_kernel.py")
    assert written.read_bytes() == GOLDEN.read_bytes()
    assert quartic_kernel()[0].source == gf.source  # deterministic


def test_golden_module_values_match_sympy(x64):
    spec = importlib.util.spec_from_file_location("golden_quartic_kernel", GOLDEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, (x, y, a), L = quartic_kernel()
    params = [x, y]
    grad, hess = [L.diff(v) for v in params], sp.hessian(L, params)
    for (xv, yv), av in zip(random_points(3, 2, seed=6), [0.3, -1.2, 2.5]):
        subs = {x: xv, y: yv, a: av}
        value, g, h = module.quartic_kernel(jnp.array([xv, yv]), a=av)
        assert_close(value, sympy_values([L], subs)[0])
        assert_close(g, sympy_values(grad, subs))
        assert_close(h, np.reshape(sympy_values(list(hess), subs), (2, 2)))


# ------------------------------------------------------------ (7) errors
@pytest.mark.parametrize("call, error, match", [
    (lambda: build_function("x**2", [X]), TypeError, "exprs"),
    (lambda: build_function([X, 1.0], [X]), TypeError, r"exprs\[1\]"),
    (lambda: build_function([], [X]), ValueError, "exprs"),
    (lambda: build_function(X + Z, [X]), ValueError, r"exprs: free symbols \{z\} are neither params nor consts"),
    (lambda: build_function(X, [X, "y"]), TypeError, "params"),
    (lambda: build_function(X, X), TypeError, "params"),
    (lambda: build_function(X, [X, X]), ValueError, "params: duplicate"),
    (lambda: build_function(X, []), ValueError, "params"),
    (lambda: build_function(X * A, [X], [A, A]), ValueError, "consts: duplicate"),
    (lambda: build_function(X, [X], [X]), ValueError, "consts"),
    (lambda: build_function(X, [X], [2]), TypeError, "consts"),
    (lambda: build_function(X, [X], name="not valid"), ValueError, "name"),
    (lambda: build_function(sp.LambertW(X), [X]), ValueError, "exprs"),
    (lambda: build_function(sp.Sum(X**Y, (Y, 0, 3)), [X]), ValueError, "exprs: .*doit"),
    (lambda: build_function(sp.I * X, [X], cse=False), ValueError, "exprs"),
    (lambda: build_function(sp.Symbol("x") + X, [X]), ValueError, "different assumptions"),
    (lambda: build_function(sp.DiracDelta(X), [X]), ValueError, "exprs: DiracDelta"),
    (lambda: build_function(sp.Derivative(sp.Function("f")(X), X), [X]), ValueError, "exprs: .*Derivative"),
    (lambda: build_function(sp.floor(X), [X]), ValueError, "exprs: floor"),
    (lambda: build_function(sp.zoo * X, [X]), ValueError, "exprs: zoo"),
    (lambda: build_function(sp.sqrt(-2) * X, [X]), ValueError, "exprs: complex"),
])
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_awkward_symbol_names():
    """Names that are keywords, reserved, not identifiers, or code become safe identifiers."""
    lam, th, xy, one = sp.Symbol("lambda"), sp.Symbol("theta"), sp.Symbol("x-y"), sp.Symbol("1a")
    k0, err, evil = sp.Symbol("_x0"), sp.Symbol("ValueError"), sp.Symbol("e\nimport os")
    exprs = sp.Matrix([lam * th + xy, one * k0 + err, evil])
    gf = build_function(exprs, [lam, th, xy, evil], [one, k0, err])
    assert all(name.isidentifier() for name in gf.arg_names) and "_x0" not in gf.arg_names
    assert "\nimport os" not in gf.source
    expected = [10.0, 31.0, 7.0]
    np.testing.assert_allclose(gf([2.0, 3.0, 4.0, 7.0], **dict(zip(gf.arg_names, [5.0, 6.0, 1.0]))), expected)
    np.testing.assert_allclose(gf([2.0, 3.0, 4.0, 7.0], **{"1a": 5.0, "_x0": 6.0, "ValueError": 1.0}), expected)
    with pytest.raises(ValueError, match="theta"):  # the builtin is still reachable
        gf([1.0], 1.0, 1.0, 1.0)


# ------------------------------------------------------------ (8) dtypes
def test_float32_in_float32_out(no_x64):
    L, th, _ = least_squares(n_res=9, n_par=3, seed=7)
    gf = build_function([L, sp.Matrix([L.diff(t) for t in th]), sp.hessian(L, th), sp.Integer(2)], th)
    outs = gf(jnp.ones(3, jnp.float32))
    assert [o.dtype for o in outs] == [jnp.float32] * 4
    outs = jax.jit(jax.vmap(gf.fn))(jnp.ones((2, 3), jnp.float32))
    assert [o.dtype for o in outs] == [jnp.float32] * 4


def test_output_dtype_follows_theta_with_x64(x64):
    gf = build_function([X * A, sp.Matrix([1, X])], [X], [A])
    assert [o.dtype for o in gf(jnp.ones(1, jnp.float32), a=np.float64(2.0))] == [jnp.float32] * 2
    assert [o.dtype for o in gf(jnp.ones(1, jnp.float64), a=2.0)] == [jnp.float64] * 2
    assert [o.dtype for o in gf(jnp.ones(1, jnp.int32), a=2.0)] == [jnp.float64] * 2


DERIVE_MODULES = sorted(m.name for m in pkgutil.iter_modules(derive.__path__))


@pytest.mark.parametrize("module", DERIVE_MODULES)
def test_docstring_examples(module):
    """Every doctest in derive (the examples users copy) runs and gives the printed result."""
    mod = importlib.import_module(f"derive.{module}")
    result = doctest.testmod(mod, verbose=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_docstring_examples_exist():
    counts = [doctest.testmod(importlib.import_module(f"derive.{m}"), verbose=False).attempted for m in DERIVE_MODULES]
    assert sum(c > 0 for c in counts) >= 7   # codegen, central, modified, parsing, operators, taylor, ...


# ------------------------------------------------- (9) Piecewise and non-smooth functions
def sympy_piecewise_derivative(expr, params, point):
    """SymPy's own Piecewise form (expr.rewrite(Piecewise)) differentiated and evaluated: the oracle."""
    form = expr.rewrite(sp.Piecewise)
    subs = {p: sp.Float(v, 40) for p, v in zip(params, point)}
    return [float(sp.N(form.diff(p).xreplace(subs), 30)) for p in params]


@pytest.mark.parametrize("cse", [True, False])
def test_piecewise_gradients_are_finite_where_the_taken_branch_is_smooth(x64, cse):
    """Issue 8: jax.grad through Piecewise((log(x)*y, x > 0), (x**2 - y, True)) was NaN for x < 0."""
    L = sp.Piecewise((sp.log(X) * Y, X > 0), (X**2 - Y, True)) + sp.Piecewise((sp.sqrt(Y), Y > 0), (-Y, True))
    f = build_function(L, [X, Y], cse=cse)
    for point in ([-1.5, -2.0], [0.7, 2.0], [-0.3, 0.5], [2.0, -1.0]):
        expected = sympy_piecewise_derivative(L, [X, Y], point)
        assert_close(jax.grad(f)(jnp.asarray(point)), expected)
        hess = jax.hessian(f)(jnp.asarray(point))
        assert np.all(np.isfinite(np.asarray(hess))), (point, hess)
        oracle = [[float(sp.N(L.diff(p, q).xreplace(dict(zip([X, Y], map(sp.Float, point)))), 30))
                   for q in (X, Y)] for p in (X, Y)]
        assert_close(hess, oracle)


KINKS = [
    (sp.Abs(X - Y) + Y**2, [(1.0, 1.0), (0.0, 0.0), (2.0, -1.0)]),
    (sp.Max(X, Y) * 3 + X, [(1.0, 1.0), (-1.0, 2.0)]),
    (sp.Max(X, Y, 2 * Z), [(1.0, 1.0, 0.5), (0.0, 0.0, 0.0)]),
    (sp.Min(X, Y**2), [(1.0, 1.0), (1.0, -1.0)]),
    (sp.Max(0, X) * Y, [(0.0, 2.0), (-1.0, 2.0)]),                # relu
    (sp.sign(X) * Y + sp.Heaviside(X - Y) * X, [(0.0, 1.0), (1.0, 1.0)]),
]


@pytest.mark.parametrize("L, points", KINKS)
def test_nonsmooth_convention_is_followed_by_every_kernel_at_kinks(x64, L, points):
    """Generated ∇L and H, jax.grad and jax.hessian of the value kernel, and SymPy's own derivative of
    its Piecewise form agree everywhere, kinks included (derive._nonsmooth: first branch that holds)."""
    from derive import derivatives

    params = sorted(L.free_symbols, key=lambda s: s.name)
    g, H = derivatives(L, params)
    assert not any(e.has(sp.DiracDelta, sp.Derivative) for e in list(g) + list(H))
    value, kernels = build_function(L, params), build_function([g, H], params)
    for point in points:
        theta = jnp.asarray(point, dtype=jnp.float64)
        g_gen, h_gen = kernels(theta)
        expected = sympy_piecewise_derivative(L, params, point)
        assert_close(g_gen, expected)
        assert_close(jax.grad(value)(theta), expected)
        assert_close(jax.hessian(value)(theta), h_gen)


def test_nan_in_nan_out_for_piecewise_forms(x64):
    """Comparisons with NaN are False; a Piecewise on a NaN is NaN rather than a silent branch."""
    exprs = [sp.sign(X), sp.Max(X, 1), sp.Min(1, X), sp.Abs(X), sp.Heaviside(X), sp.Piecewise((1, X > 0), (2, True))]
    for cse in (True, False):
        out = build_function(sp.Matrix(exprs), [X], cse=cse)(jnp.asarray([jnp.nan]))
        assert np.all(np.isnan(np.asarray(out))), (cse, out)


# ------------------------------------------------------------ (10) regressions, names, size
def test_scaled_sums_with_reciprocal_terms(x64):
    """Issue 8: 3x - 1/y was printed as -1.0/y - 3.0*x and 2/x + 9/x**2 as 2.0/x + 4.5/(x*x)."""
    for L, point in [(3 * X - 1 / Y, (0.8, 1.7)), (2 / X + 9 / X**2 + Y, (0.7, 0.2)), (-(1 / X) - 5 * Y, (3.0, 1.0))]:
        for cse in (True, False):
            got = build_function(L, [X, Y], cse=cse)(list(point))
            assert_close(got, sympy_values([L], {X: point[0], Y: point[1]})[0])


def test_constants_are_arrays_not_python_floats(x64):
    """A constant passed as the Python float 0.0 made the kernel raise ZeroDivisionError."""
    for cse in (True, False):
        f = build_function(1 / A + X, [X], [A], cse=cse)
        assert np.isinf(float(f([1.0], 0.0)))


def test_constants_named_like_the_kernel_arguments(x64):
    """A constant named theta (or dtype, or _x0) can be passed by keyword under its own name."""
    th, dt, tmp = sp.Symbol("theta"), sp.Symbol("dtype"), sp.Symbol("_x0")
    f = build_function(X * th + dt - tmp, [X], [th, dt, tmp])
    assert float(f([2.0], theta=3.0, dtype=1.0, _x0=0.5)) == 6.5
    with pytest.raises(TypeError, match="nope: not a constant"):
        f([2.0], nope=1.0)
    twins = build_function(X + sp.Symbol("a") + sp.Symbol("a", positive=True), [X],
                           [sp.Symbol("a"), sp.Symbol("a", positive=True)])
    with pytest.raises(TypeError, match="2 constants are named 'a'"):
        twins([1.0], a=1.0)
    assert float(twins([1.0], 2.0, 3.0)) == 6.0


def nested(depth):
    """The issue's nested loss; built unevaluated (SymPy's own construction is exponential in depth)."""
    e, y, z = sp.symbols("e y z", real=True)
    ex = e
    with sp.evaluate(False):
        for k in range(depth):
            ex = sp.sin(ex + y * sp.Rational(k + 1, 5)) + sp.exp(-ex**2 / (k + 2)) * z
    return ex, [e, y, z]


def test_generation_is_linear_in_the_dag_of_nested_losses(x64):
    """Issue 8: (L, ∇L, H) of a 12-deep nested loss took ~90 s (tree walks are exponential in depth).
    At depth 40 the trees of ∇L and H have ~10^13 nodes; generation must visit each distinct node a
    few times (a regression to tree walks does not finish). Values against SymPy at depth 4 (SymPy's
    own evaluation walks the tree: about 7 s per point there, 21 s at depth 5)."""
    from derive import derivatives
    from derive._walk import postorder, tree_size

    L, params = nested(40)
    g, H = derivatives(L, params)
    dag = sum(1 for _ in postorder([L, *g, *H]))
    assert dag < 100 * 40 and tree_size(H[0, 0]) > 10**12   # linear in depth; the tree is not
    f = build_function([L, g, H], params)
    assert f.source.count("\n") < 3 * dag
    value, grad, hess = f([0.3, -0.2, 0.5])
    assert np.all(np.isfinite(np.asarray(hess))) and np.isfinite(float(value))
    small, small_params = nested(4)
    sg, sh = derivatives(small, small_params)
    for point in random_points(1, 3, seed=11, low=-1, high=1):
        v4, g4, h4 = build_function([small, sg, sh], small_params)(point)
        subs = dict(zip(small_params, map(sp.Float, point)))
        assert_close(v4, float(sp.N(small.xreplace(subs), 30)))
        assert_close(g4, [float(sp.N(small.diff(p).xreplace(subs), 30)) for p in small_params])
        assert_close(h4, [[float(sp.N(small.diff(p, q).xreplace(subs), 30)) for q in small_params]
                          for p in small_params])
