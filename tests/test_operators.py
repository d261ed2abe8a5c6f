"""Operator programs for JAX losses over pytrees, against slow dense float64 oracles.

The oracle is dense derivative tensors of hand-written JAX losses by nested ``jax.jacfwd``,
contracted with ``jnp.einsum`` (obviously correct, O(n^4)); it shares no code with
``derive/operators.py``. The generated programs of the modified field (orders 1, 2) and of the
central flow (k = 1, 2, as ``numeric.processes._central_programs`` builds them) are golden files
under tests/golden/, regenerated and diffed byte for byte; after an intended change regenerate
them with `GDFLOWS_REGENERATE_GOLDEN=1 python -m pytest tests/test_operators.py -k golden`.
"""
import functools
import importlib.util
import os
import traceback
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import derive
import derive.operators
from derive import central_flow, compile_operator, modified_loss, modified_vector_field
from derive.ops import DL, Dot, Form, Vec
from derive.ops import eta as ETA

GOLDEN_DIR = Path(__file__).parent / "golden"

x, y = sp.symbols("x y", real=True)


def mlp_loss(params, X, Y):
    h = jnp.tanh(X @ params["W1"] + params["b1"])
    return 0.5 * jnp.mean(jnp.sum((h @ params["W2"] - Y) ** 2, axis=1))


def small_mlp(dtype=jnp.float64, n_in=3, width=4, n_out=2, n=7, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    params = {"W1": jax.random.normal(k[0], (n_in, width), dtype) / 2,
              "b1": jax.random.normal(k[1], (width,), dtype) / 5,
              "W2": jax.random.normal(k[2], (width, n_out), dtype) / 2}
    X = jax.random.normal(k[3], (n, n_in), dtype)
    Y = jax.random.normal(k[4], (n, n_out), dtype)
    return params, (lambda p: mlp_loss(p, X, Y))


def dense_oracle(loss, params):
    """Flat g, H and T = D³L via nested jacfwd: obviously correct, O(n³)."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = lambda w: loss(unravel(w))
    g, H, T = jax.jit(lambda w: (jax.grad(f)(w), jax.hessian(f)(w), jax.jacfwd(jax.hessian(f))(w)))(flat)
    return flat, unravel, g, H, T


def test_modified_field_order2_matches_dense_oracle(x64):
    params, loss = small_mlp()
    eta = 0.3
    flat, unravel, g, H, T = dense_oracle(loss, params)
    Tgg = jnp.einsum("ijk,j,k->i", T, g, g)
    expected = -g - eta / 2 * H @ g - eta**2 * (H @ H @ g / 3 + Tgg / 12)
    got = modified_vector_field(2).compile(loss)(params, eta=eta)
    got_flat = jax.flatten_util.ravel_pytree(got)[0]
    np.testing.assert_allclose(got_flat, expected, rtol=1e-10, atol=1e-12)
    assert set(got) == set(params)


def test_sigma2_and_modified_loss_match_dense_oracle(x64):
    params, loss = small_mlp(seed=1)
    flat, unravel, g, H, T = dense_oracle(loss, params)
    evals, evecs = jnp.linalg.eigh(H)
    u = evecs[:, -1]
    gradS = jnp.einsum("ijk,j,k->i", T, u, u)
    cf = central_flow()
    got = cf.sigma2.compile(loss)(params, u=unravel(u))
    np.testing.assert_allclose(got, 2 * (-g @ gradS) / (gradS @ gradS), rtol=1e-10)
    vel = jax.flatten_util.ravel_pytree(cf.compile(loss)(params, eta=0.1, u=unravel(u)))[0]
    P = jnp.eye(len(g)) - jnp.outer(gradS, gradS) / (gradS @ gradS)
    np.testing.assert_allclose(vel, -0.1 * P @ g, rtol=1e-9, atol=1e-12)
    Leta = modified_loss(1).compile(loss)(params, eta=0.1)
    np.testing.assert_allclose(Leta, loss(params) + 0.1 / 4 * g @ g, rtol=1e-12)


def test_compiled_equals_generated_sympy_instantiation(x64):
    """The same formula through both back ends: autodiff program vs SymPy expressions."""
    L = sp.exp(x * y) / 3 + (x**2 - 1) ** 2 / 4 + sp.sin(y) * x
    field = modified_vector_field(3)
    sym = sp.lambdify((x, y), field.on(L, (x, y), eta=sp.Rational(1, 10)), "numpy")
    jl = lambda p: jnp.exp(p[0] * p[1]) / 3 + (p[0] ** 2 - 1) ** 2 / 4 + jnp.sin(p[1]) * p[0]
    prog = jax.jit(lambda w: field.compile(jl)(w, eta=0.1))
    for w in ([0.3, -0.7], [1.2, 0.4]):
        np.testing.assert_allclose(prog(jnp.array(w)), np.ravel(sym(*w)), rtol=1e-11)


def test_jit_vmap_and_pytrees(x64):
    params, loss = small_mlp(seed=2)
    prog = modified_vector_field(2).compile(loss)
    batched = {k: jnp.stack([v, 2 * v]) for k, v in params.items()}
    out = jax.jit(jax.vmap(lambda p: prog(p, eta=0.2)))(batched)
    one = prog({k: 2 * v for k, v in params.items()}, eta=0.2)
    for k in params:
        np.testing.assert_allclose(out[k][1], one[k], rtol=1e-12)


def test_million_parameter_network_runs_and_agrees_with_finite_differences(x64):
    """T[g, g] on a 10⁶-parameter MLP vs a central difference of Hessian-vector products."""
    params, loss = small_mlp(n_in=1000, width=1000, n_out=10, n=16, seed=3)
    n_params = sum(v.size for v in jax.tree_util.tree_leaves(params))
    assert n_params > 10**6
    tgg = derive.DL(derive.grad, derive.grad)
    prog = jax.jit(lambda p: compile_operator(tgg, loss)(p))
    got = jax.flatten_util.ravel_pytree(prog(params))[0]
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    f = lambda w: loss(unravel(w))
    g = jax.grad(f)(flat)
    hvp = lambda w: jax.jvp(jax.grad(f), (w,), (g,))[1]
    eps = 1e-4 / float(jnp.linalg.norm(g))
    fd = (hvp(flat + eps * g) - hvp(flat - eps * g)) / (2 * eps)
    assert float(jnp.linalg.norm(got - fd) / jnp.linalg.norm(fd)) < 1e-6


def test_float32_programs_stay_float32():
    params, loss = small_mlp(dtype=jnp.float32)
    out = modified_vector_field(1).compile(loss)(params, eta=0.1)
    assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(out))


def test_program_errors_name_the_argument():
    params, loss = small_mlp(dtype=jnp.float32)
    with pytest.raises(ValueError, match="eta"):
        modified_vector_field(1).compile(loss)(params)
    with pytest.raises(ValueError, match=r"needs \['u'\]"):
        central_flow().sigma2.compile(loss)(params)
    with pytest.raises(TypeError, match="loss_fn"):
        compile_operator(derive.grad, "not a function")
    with pytest.raises(ValueError, match="u: expected"):
        central_flow().sigma2.compile(loss)(params, u=jnp.ones(3))


def test_multi_output_program_for_the_k_eigenvalue_flow(x64):
    """A, B and the velocity basis of central_flow_multi(2) against the dense oracle."""
    params, loss = small_mlp(seed=4)
    flat, unravel, g, H, T = dense_oracle(loss, params)
    U = jnp.linalg.eigh(H)[1][:, -2:]
    m = derive.central_flow_multi(2)
    v0, basis = m.velocity_basis
    prog = compile_operator(list(m.A) + list(m.B) + [v0, *basis], loss)
    out = prog(params, eta=0.1, u1=unravel(U[:, 0]), u2=unravel(U[:, 1]))
    A = jnp.array(out[:4]).reshape(2, 2)
    B = jnp.array(out[4:13]).reshape(3, 3)
    N = {(i, j): jnp.einsum("ijk,j,k->i", T, U[:, a], U[:, b]) for a, i in enumerate((0, 1))
         for b, j in enumerate((0, 1))}
    np.testing.assert_allclose(A, 0.1 * jnp.array([[N[0, 0] @ g, N[0, 1] @ g], [N[1, 0] @ g, N[1, 1] @ g]]),
                               rtol=1e-10)
    packed = [(0, 0), (0, 1), (1, 1)]
    mult = [1, 2, 1]
    Bd = jnp.array([[0.05 * mult[c] * (N[packed[r]] @ N[packed[c]]) for c in range(3)] for r in range(3)])
    np.testing.assert_allclose(B, Bd, rtol=1e-10)
    X = jnp.array([[0.3, 0.1], [0.1, 0.2]])
    vel = jax.flatten_util.ravel_pytree(out[13])[0] + sum(
        X[i, j] * jax.flatten_util.ravel_pytree(v)[0] for (i, j), v in zip(packed, out[14:]))
    expected = -0.1 * (g + 0.5 * sum(X[i, j] * N[i, j] for i in range(2) for j in range(2)))
    np.testing.assert_allclose(vel, expected, rtol=1e-10)


# --------------------------------------------------------------------------- golden programs

def _central_program(k):
    """The central-flow program for k critical directions, exactly as the numeric layer builds it."""
    from numeric.processes import _central_programs
    progs, _, _ = _central_programs(SimpleNamespace(loss=_quartic_flat), None, k)
    return progs[k - 1]


def _quartic_flat(w):
    return jnp.sum(w**4) / 4 + w[0] * w[-1]


GOLDEN_PROGRAMS = {
    "operator_modified_field_order1.py": lambda: modified_vector_field(1).compile(_quartic_flat),
    "operator_modified_field_order2.py": lambda: modified_vector_field(2).compile(_quartic_flat),
    "operator_central_flow_k1.py": lambda: _central_program(1),
    "operator_central_flow_k2.py": lambda: _central_program(2),
}


@pytest.mark.parametrize("filename", sorted(GOLDEN_PROGRAMS))
def test_golden_operator_programs_regenerate_byte_identically(filename, tmp_path):
    prog = GOLDEN_PROGRAMS[filename]()
    if os.environ.get("GDFLOWS_REGENERATE_GOLDEN"):
        prog.write(GOLDEN_DIR / filename)
    written = prog.write(tmp_path / filename)
    assert written.read_bytes() == (GOLDEN_DIR / filename).read_bytes()
    assert GOLDEN_PROGRAMS[filename]().source == prog.source   # deterministic


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_golden_modules_match_dense_oracle(x64):
    """The checked-in modules, run as plain Python, against nested jacfwd of a hand-written loss."""
    params, loss = small_mlp(seed=5)
    flat, unravel, g, H, T = dense_oracle(loss, params)
    f = lambda w: loss(unravel(w))
    eta = 0.2
    mods = {k: _load(GOLDEN_DIR / k, f"golden_{k[:-3]}") for k in GOLDEN_PROGRAMS}
    field1 = mods["operator_modified_field_order1.py"].modified_field_of_euler_order_1
    field2 = mods["operator_modified_field_order2.py"].modified_field_of_euler_order_2
    Tgg = jnp.einsum("ijk,j,k->i", T, g, g)
    np.testing.assert_allclose(field1(flat, f, jax.grad(f), eta), -g - eta / 2 * H @ g, rtol=1e-10)
    np.testing.assert_allclose(field2(flat, f, jax.grad(f), eta),
                               -g - eta / 2 * H @ g - eta**2 * (H @ H @ g / 3 + Tgg / 12), rtol=1e-10)
    U = jnp.linalg.eigh(H)[1][:, -2:]
    N = lambda a, b: jnp.einsum("ijk,j,k->i", T, U[:, a], U[:, b])
    out1 = mods["operator_central_flow_k1.py"].central_flow_k_1(flat, f, jax.grad(f), eta, U[:, 0])
    want1 = [eta * g @ N(0, 0), eta / 2 * N(0, 0) @ N(0, 0), -eta * g, -eta / 2 * N(0, 0)]
    out2 = mods["operator_central_flow_k2.py"].central_flow_k_2(flat, f, jax.grad(f), eta, U[:, 0], U[:, 1])
    packed, mult = [(0, 0), (0, 1), (1, 1)], [1, 2, 1]
    want2 = ([eta * g @ N(i, j) for i in (0, 1) for j in (0, 1)]
             + [eta / 2 * mult[c] * N(*packed[r]) @ N(*packed[c]) for r in range(3) for c in range(3)]
             + [-eta * g] + [-eta / 2 * mult[c] * N(*packed[c]) for c in range(3)])
    for got, want in [(out1, want1), (out2, want2)]:
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- visible source

def test_source_shows_the_program_and_its_provenance():
    prog = modified_vector_field(2).compile(_quartic_flat)
    src = prog.source
    assert src.startswith(f"# Generated by gdflows {derive.__version__} (derive.operators.compile_operator)")
    assert f"# program: {modified_vector_field(2).title}" in src
    assert "# formulas sha256: " in src and derive.ops.opstr(modified_vector_field(2).expr) in src
    body = src.split(f"def {prog.function_name}(w, loss, grad, eta):")[1]
    lines = [ln.strip() for ln in body.splitlines()]
    assert lines[2:6] == ["g = grad(w)", "H_g = jvp(grad, w, g)", "H2_g = jvp(grad, w, H_g)",
                          "T_g_g = jvp(lambda x: jvp(grad, x, g), w, g)"]
    assert sum(ln.count("grad(w)") for ln in lines) == 1   # one gradient, every other derivative a jvp of it
    assert sum(ln.count("jvp(") for ln in lines) == 4
    assert "central_flow_k_2(w, loss, grad, eta, u1, u2)" in _central_program(2).source


def test_written_module_imports_and_gives_the_same_numbers(tmp_path, x64):
    params, loss = small_mlp(seed=6)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    u = Vec("u")
    exprs = [DL(DL(), u, u) * Dot(DL(), u) + derive.eta * DL(u), Form(u, u) ** 2 - sp.Symbol("s") / derive.eta]
    prog = compile_operator(exprs, loss, name="mixed program")
    module = _load(prog.write(tmp_path / "mixed.py"), "mixed_program")
    f = lambda w: loss(unravel(w))
    uu = jax.random.normal(jax.random.PRNGKey(0), flat.shape)
    got = getattr(module, prog.function_name)(flat, f, jax.grad(f), 0.3, uu, 0.7)
    want = prog(params, eta=0.3, u=unravel(uu), s=0.7)
    np.testing.assert_array_equal(got[0], jax.flatten_util.ravel_pytree(want[0])[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert (tmp_path / "mixed.py").read_text(encoding="utf-8") == prog.source
    assert compile_operator(exprs, loss, name="mixed program").source == prog.source


def test_traceback_shows_generated_lines():
    def broken_loss(p):
        raise RuntimeError("loss failed")
    prog = compile_operator(DL(DL()), broken_loss, name="tb program")
    with pytest.raises(RuntimeError) as info:
        prog(jnp.ones(3))
    frames = [f for f in traceback.extract_tb(info.tb) if f.filename == prog.filename]
    assert frames and frames[0].line == "g = grad(w)"
    assert frames[0].line in prog.source.splitlines()[frames[0].lineno - 1]


# --------------------------------------------------------------------------- symbols

def test_learning_rate_is_matched_by_identity_not_name(monkeypatch):
    """When derive.ops.eta becomes a Dummy, a program still takes it as eta=, and only it."""
    lr = sp.Dummy("eta", positive=True)
    monkeypatch.setattr(derive.operators, "ETA", lr)
    w = jnp.array([1.0, 2.0])
    prog = compile_operator(-lr * DL(), lambda p: jnp.sum(p**2) / 2)
    np.testing.assert_allclose(prog(w, eta=0.5), -0.5 * w)
    assert "(w, loss, grad, eta)" in prog.source
    with pytest.raises(ValueError, match=r"2 different symbols are named 'eta'"):
        compile_operator(lr * DL() + sp.Symbol("eta") * DL(), jnp.sum)


@pytest.mark.parametrize("expr, match", [
    (sp.Symbol("u") * Vec("u"), r"^expr: 2 different symbols are named 'u' \(Symbol, Vec\); rename one$"),
    (sp.Symbol("a") * DL() + sp.Symbol("a", positive=True) * DL(),
     r"^expr: 2 different symbols are named 'a' \(Symbol, Symbol\(positive\)\); rename one$"),
    (sp.Dummy("sigma2") * Dot(DL(), DL()) + sp.Dummy("sigma2"), r"named 'sigma2' \(Dummy, Dummy\)"),
    (sp.Symbol("eta") * DL(), r"^expr: symbol 'eta' is not the learning rate derive.ops.eta, but eta="),
    (Vec("params") + DL(), r"symbol 'params' is not the learning rate"),
    (sp.sin(Dot(DL(), DL())), r"^expr: cannot compile sin \(sin\(Dot\(DL\(\), DL\(\)\)\)\)$"),
    (sp.oo * DL(), r"^expr: cannot compile Infinity"),
])
def test_symbol_and_vocabulary_errors_are_one_line(expr, match):
    with pytest.raises(ValueError, match=match) as info:
        compile_operator(expr, jnp.sum)
    assert "\n" not in str(info.value)


def test_hostile_input_names(x64):
    """Inputs named like the program's own locals and globals keep their meaning."""
    names = ["g", "w", "x", "grad", "jvp", "jnp", "lambda", "H_g", "θ", "u-1"]
    vecs = [Vec(n) for n in names]
    s_names = ["L", "loss", "class", "dot_g_g", "σ²"]
    scal = [sp.Symbol(n) for n in s_names]
    expr = [sum((k + 1) * DL(v) for k, v in enumerate(vecs)) + DL(),
            sum((k + 1) * s for k, s in enumerate(scal)) * Dot(DL(), DL(DL())) + Form()]
    n = 4
    A = jnp.array(np.random.default_rng(0).normal(size=(n, n)))
    H = A @ A.T
    loss = lambda p: 0.5 * p @ H @ p
    w = jnp.arange(1.0, n + 1)
    vals = {nm: jnp.full(n, k + 1.0) for k, nm in enumerate(names)}
    svals = {nm: 0.1 * (k + 1) for k, nm in enumerate(s_names)}
    out = compile_operator(expr, loss)(w, **vals, **svals)
    g = H @ w
    np.testing.assert_allclose(out[0], sum((k + 1) * H @ vals[nm] for k, nm in enumerate(names)) + g)
    coef = sum((k + 1) * svals[nm] for k, nm in enumerate(s_names))
    np.testing.assert_allclose(out[1], coef * g @ H @ g + loss(w))


# --------------------------------------------------------------------------- differential test

def _polynomial(p, c):
    a, b = p["a"], p["b"]
    return jnp.sum(c[:2] * a**4) / 4 + c[2] * a[0] * a[1] * b + 0.5 * (1 + c[3] ** 2) * b**2 + c[4] * a[1] ** 3


def _softplus(p, c):
    w = jnp.concatenate([p["a"], p["b"][None]])
    return jnp.sum(jnp.logaddexp(0.0, jnp.reshape(c, (2, 3)) @ w)) + 0.1 * w @ w


def _tanh_unit(p, c):
    a, b = p["a"], p["b"]
    return (c[2] * jnp.tanh(c[0] * a[0] + c[1] * a[1] + b) - c[3]) ** 2 + c[4] * a[0] * b**2


def _trig(p, c):
    a, b = p["a"], p["b"]
    return jnp.sin(c[0] * a[0] * b + c[5]) + jnp.cos(a[1] + c[1]) * jnp.exp(c[2] * b / 3)


LOSSES = [_polynomial, _softplus, _tanh_unit, _trig]     # on params {"a": (2,), "b": ()}, coefficients c (6,)
VEC_NAMES = ["u", "v", "g", "w", "x", "grad", "lambda", "θ", "H_g"]
SCALAR_NAMES = ["s", "L", "loss", "jnp", "class", "σ²", "T_g_g"]
MAX_ORDER = 4     # D^4 L: a DL of three vectors


@functools.lru_cache(maxsize=None)
def _dense_tensors(family):
    """jit(flat, c) -> [L, ∇L, ∇²L, D³L, D⁴L] of LOSSES[family] by nested jacfwd (float64)."""
    def tensors(flat, c):
        f = lambda w: LOSSES[family]({"a": w[:2], "b": w[2]}, c)
        d, out = jax.grad(f), [f(flat)]
        out.append(d(flat))
        for _ in range(MAX_ORDER - 1):
            d = jax.jacfwd(d)
            out.append(d(flat))
        return out
    return jax.jit(tensors)


def _contract(D, vectors):
    """D (order m) contracted with len(vectors) vectors on its trailing indices."""
    idx = "abcdefgh"[:D.ndim]
    keep = idx[:D.ndim - len(vectors)]
    spec = ",".join([idx] + [idx[D.ndim - len(vectors) + k] for k in range(len(vectors))]) + "->" + keep
    return jnp.einsum(spec, D, *vectors)


def _oracle(e, D, vecs, scalars, eta):
    """Evaluate a formula with dense tensors: the slow, obviously correct reading of the vocabulary."""
    ev = lambda a: _oracle(a, D, vecs, scalars, eta)
    if isinstance(e, Vec):
        return vecs[e.name]
    if isinstance(e, DL):
        return _contract(D[len(e.args) + 1], [ev(a) for a in e.args])
    if isinstance(e, Form):
        return _contract(D[len(e.args)], [ev(a) for a in e.args])
    if isinstance(e, Dot):
        return jnp.dot(ev(e.args[0]), ev(e.args[1]))
    if e == ETA:
        return eta
    if isinstance(e, sp.Symbol):
        return scalars[e.name]
    if isinstance(e, sp.Add):
        return functools.reduce(lambda a, b: a + b, [ev(a) for a in e.args])
    if isinstance(e, sp.Mul):
        return functools.reduce(lambda a, b: a * b, [ev(a) for a in e.args])
    if isinstance(e, sp.Pow):
        return ev(e.args[0]) ** float(e.args[1])
    return float(e)


NUMBERS = [sp.Integer(2), sp.Integer(-1), sp.Rational(-1, 3), sp.Rational(5, 2), sp.Float(0.25), sp.pi]
COEFS = [sp.Integer(1), sp.Integer(-1), sp.Integer(2), sp.Rational(1, 2), sp.Rational(-3, 4)]


@st.composite
def formulas(draw):
    """Random formulas over the vocabulary: nested DL up to D⁴L, Form, Dot, inputs, + * **."""
    vecs = [Vec(n) for n in draw(st.lists(st.sampled_from(VEC_NAMES), min_size=1, max_size=2, unique=True))]
    syms = [ETA] + [sp.Symbol(n) for n in draw(st.lists(st.sampled_from(SCALAR_NAMES), max_size=2, unique=True))]

    def vector(depth):
        kind = draw(st.sampled_from(["g", "input", "DL", "DL", "DL"][:5 if depth else 2]))
        if kind == "g":
            return DL()
        if kind == "input":
            return draw(st.sampled_from(vecs))
        return DL(*[argument(depth - 1) for _ in range(draw(st.integers(1, MAX_ORDER - 1)))])

    def argument(depth):        # a vector atom, or a combination such as g - u/2
        if draw(st.integers(0, 3)):
            return vector(depth)
        return draw(st.sampled_from(COEFS)) * vector(depth) + draw(st.sampled_from(COEFS)) * vector(depth)

    def scalar(depth):
        kind = draw(st.sampled_from(["number", "symbol", "dot", "form", "add", "mul", "pow"][:7 if depth else 4]
                                    + ["dot", "form"]))
        if kind == "number":
            return draw(st.sampled_from(NUMBERS))
        if kind == "symbol":
            return draw(st.sampled_from(syms))
        if kind == "dot":
            return Dot(vector(1), argument(1))
        if kind == "form":
            return Form(*[argument(1) for _ in range(draw(st.integers(0, 3)))])
        a = scalar(depth - 1)
        if kind == "add":
            return a + scalar(depth - 1)
        if kind == "mul":
            return a * scalar(depth - 1)
        return draw(st.sampled_from([a**2, a**3, (1 + a**2) ** sp.Rational(1, 2), 1 / (1 + a**2)]))

    def formula():
        if draw(st.booleans()):
            return scalar(2)
        return sum((scalar(1) * vector(2) for _ in range(draw(st.integers(1, 3)))), sp.Integer(0))

    return [formula() for _ in range(draw(st.integers(1, 3)))], vecs, syms[1:]


finite = functools.partial(st.floats, allow_nan=False, allow_infinity=False)


@st.composite
def cases(draw):
    exprs, vecs, syms = draw(formulas())
    n = 3
    return dict(exprs=exprs, family=draw(st.integers(0, len(LOSSES) - 1)),
                c=draw(st.lists(finite(-1.5, 1.5), min_size=6, max_size=6)),
                w=draw(st.lists(finite(-1, 1), min_size=n, max_size=n)),
                vecs={v.name: draw(st.lists(finite(-1, 1), min_size=n, max_size=n)) for v in vecs},
                scalars={s.name: draw(finite(-1.5, 1.5)) for s in syms},
                eta=draw(finite(0.05, 0.5)), single=draw(st.booleans()))


def _pytree(v):
    return {"a": jnp.asarray(v[:2]), "b": jnp.asarray(v[2])}


@settings(max_examples=int(os.environ.get("GDFLOWS_OPERATOR_EXAMPLES", 15)), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
@example(case=dict(exprs=[sp.Rational(1, 2)], family=0, c=[1.0] * 6, w=[0.5, -0.5, 0.2], vecs={}, scalars={},
                   eta=0.1, single=True))
@example(case=dict(exprs=[DL(DL() - Vec("g") / 2, Vec("θ"), Vec("θ")) * Form(DL(), DL()) - ETA * Vec("g")],
                   family=3, c=[1.0, -0.5, 0.7, 0.2, 0.3, 0.1], w=[0.3, -0.4, 0.9],
                   vecs={"g": [1.0, 0.5, -0.2], "θ": [0.1, -1.0, 0.4]}, scalars={}, eta=0.3, single=False))
def test_programs_match_dense_nested_jacfwd(x64, case):
    """compile_operator on random formulas and losses == dense float64 derivative tensors + einsum."""
    assert operator_case(case) == []


def operator_case(case) -> list[str]:
    """Failures of one random program against the dense oracle (also run by benchmarks/differential.py)."""
    exprs = case["exprs"][:1] if case["single"] else case["exprs"]
    family, c = case["family"], jnp.asarray(case["c"])
    D = _dense_tensors(family)(jnp.asarray(case["w"]), c)
    vecs = {k: jnp.asarray(v) for k, v in case["vecs"].items()}
    want = [_oracle(e, D, vecs, case["scalars"], case["eta"]) for e in exprs]
    loss = functools.partial(LOSSES[family], c=c)
    prog = compile_operator(exprs[0] if case["single"] else exprs, loss, name="random formula")
    run = jax.jit(lambda w, eta, vecs, scalars: prog(w, eta=eta, **vecs, **scalars))   # one compile, not one per op
    got = run(_pytree(case["w"]), case["eta"], {k: _pytree(v) for k, v in vecs.items()}, case["scalars"])
    got = [got] if case["single"] else got
    if len(got) != len(want):
        return [f"{len(got)} outputs, expected {len(want)}"]
    failures = []
    for e, a, b in zip(exprs, got, want):
        a = jax.flatten_util.ravel_pytree(a)[0] if isinstance(a, dict) else jnp.asarray(a)
        b = jnp.asarray(b)
        if a.shape != b.shape:
            failures.append(f"{derive.ops.opstr(e)}: shape {a.shape}, expected {b.shape}")
            continue
        scale = 1.0 + float(jnp.max(jnp.abs(b)))
        if not np.allclose(a, b, rtol=1e-8, atol=1e-8 * scale):
            failures.append(f"{derive.ops.opstr(e)}: max |error| {float(jnp.max(jnp.abs(a - b))):.3g}")
    return failures
