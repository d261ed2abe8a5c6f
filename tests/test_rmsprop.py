"""Discrete RMSProp (numeric/adaptive.py): the exact 2-cycle on the normal form, derived here by
SymPy from the update rule, reached by the simulation for several β₂; the diagonal form and the
bad-input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from derive.errors import DeriveInputError
from numeric.adaptive import RMSProp, rmsprop
from numeric.problems import problem_from_string
from numeric.processes import Settings

Z_STAR = 1.5


def cycle(eta):
    """(a, z, ν) of the 2-cycle x = ±a of scalar RMSProp (ε = 0, no bias correction) on
    ½(1+z)x² + ½(z−z*)²: ν is the EMA's fixed point ‖∇L(±a, z)‖², x flips sign, z stays."""
    a, z, nu = sp.symbols("a z nu", positive=True)
    x = sp.Symbol("x", real=True)
    L = (1 + z) * x**2 / 2 + (z - sp.nsimplify(Z_STAR)) ** 2 / 2
    g = [sp.diff(L, x).subs(x, a), sp.diff(L, z).subs(x, a)]
    step = sp.nsimplify(eta) / sp.sqrt(nu)
    eqs = [nu - (g[0] ** 2 + g[1] ** 2), (a - step * g[0]) + a, g[1]]
    (sol,) = sp.solve(eqs, [a, z, nu], dict=True)
    return sol[a], sol[z], sol[nu]


def run_rmsprop(eta, opt, init, steps):
    p = problem_from_string(f"(1+z)*x^2/2 + (z-{Z_STAR})^2/2", init, params="x,z")
    proc = rmsprop(p, Settings(eta=eta, k_max=2), opt)
    body = jax.jit(lambda st: jax.lax.scan(lambda s, _: (proc.step(s), None), st, None, length=steps)[0])
    return proc, body(proc.init(jnp.asarray(p.init)))


@pytest.mark.parametrize("eta, beta2", [(0.2, 0.9), (0.2, 0.999), (0.5, 0.5)])
def test_scalar_rmsprop_reaches_the_exact_two_cycle(eta, beta2, x64):
    a, z, nu = cycle(eta)
    assert sp.simplify(a - sp.nsimplify(eta) / 2) == 0                     # the closed form
    assert sp.simplify(z - (sp.nsimplify(Z_STAR) - sp.nsimplify(eta) ** 2 / 8)) == 0
    assert sp.simplify(nu - (1 + z) ** 2 * sp.nsimplify(eta) ** 2 / 4) == 0
    start = f"x={0.8 * float(a)!r},z={float(z) + 0.05!r}"
    proc, state = run_rmsprop(eta, RMSProp(beta2=beta2, nu0=float(nu)), start, 6000)
    x_end, z_end = np.asarray(state.w)
    assert abs(abs(x_end) - float(a)) < 1e-6 and abs(z_end - float(z)) < 1e-6
    assert abs(float(state.nu) - float(nu)) < 1e-6
    # the effective step η/√ν makes the x-curvature 1 + z exactly 2 in effective units
    assert abs(float(proc.observe(state)["effective_step"]) * (1 + float(z)) - 2) < 1e-6


def test_diagonal_rmsprop_from_zero_state_with_bias_correction(x64):
    """ν₀ = 0 with bias correction: the first step is sign-like, η/(|g| + ε)·g; every later ν the EMA."""
    eta, opt = 0.01, RMSProp(beta2=0.99, eps=1e-8, bias_correction=True, diagonal=True)
    proc, state = run_rmsprop(eta, opt, "x=1.0,z=0.2", 1)
    p = problem_from_string(f"(1+z)*x^2/2 + (z-{Z_STAR})^2/2", "x=1.0,z=0.2", params="x,z")
    g = np.asarray(p.grad(jnp.asarray(p.init)))
    np.testing.assert_allclose(np.asarray(state.w), p.init - eta * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(state.nu), 0.01 * g**2, rtol=1e-12)
    eigs = np.asarray(proc.observe(state)["eigs"])
    assert eigs.shape == (2,) and np.isfinite(eigs[0])


@pytest.mark.parametrize("opt, needle", [(RMSProp(beta2=1.0), "beta2"), (RMSProp(eps=-1.0), "eps")])
def test_bad_settings_are_one_line_errors(opt, needle, x64):
    p = problem_from_string("x^2", "x=1")
    with pytest.raises(DeriveInputError, match=needle):
        rmsprop(p, Settings(eta=0.1), opt)


def test_effective_eigenvalues_against_a_dense_oracle(x64):
    """The tracked top eigenvalue equals λ_max(P^{−1/2} H P^{−1/2}) with P from the next step's ν,
    computed here from a hand-written loss and NumPy's eigvalsh."""
    eta, opt = 0.05, RMSProp(beta2=0.9, eps=1e-3, bias_correction=True, diagonal=True)
    proc, state = run_rmsprop(eta, opt, "x=0.7,z=-0.3", 40)

    def loss(w):
        return (1 + w[1]) * w[0] ** 2 / 2 + (w[1] - Z_STAR) ** 2 / 2
    w = np.asarray(state.w)
    g = np.asarray(jax.grad(loss)(w))
    nu = np.asarray(state.nu) + (1 - 0.9) * (g**2 - np.asarray(state.nu))
    t = int(state.t) + 1
    d = np.sqrt(eta / (np.sqrt(nu / (1 - 0.9**t)) + 1e-3))
    H = np.asarray(jax.hessian(loss)(w))
    expected = np.linalg.eigvalsh(d[:, None] * H * d[None, :])[::-1]
    tracked = np.asarray(proc.observe(state)["eigs"])
    k = int(np.sum(np.isfinite(tracked)))          # the tracker reports the ones it follows (≥ 1)
    assert k >= 1 and np.isnan(tracked[k:]).all()
    np.testing.assert_allclose(tracked[:k], expected[:k], rtol=1e-9)
