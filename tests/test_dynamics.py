"""Theory against simulation on small problems with known answers (float64)."""

import jax.numpy as jnp
import numpy as np
import pytest

import derive
from numeric import Settings, run
from numeric.problems import get_problem
from numeric.sdcp import solve_sdcp


def test_quadratic_closed_forms(x64):
    p = get_problem("quadratic1d")
    eta, steps = 0.5, 30
    r = run(p, eta, steps, ["gd", "gf", "mf"], settings=Settings(eta=eta, rtol=1e-12, atol=1e-14))
    k = np.arange(steps + 1)
    lam, th0 = 1.0, p.init[0]
    expected = {"gd": (1 - eta * lam) ** k * th0, "gf": np.exp(-lam * k * eta) * th0,
                "mf": np.exp(-(lam + eta * lam**2 / 2) * k * eta) * th0}
    for name, want in expected.items():
        err = np.max(np.abs(r.series[name]["w"][:, 0] - want))
        print(f"quadratic {name}: max error {err:.2e}")
        assert err < 1e-10, name


def test_the_learning_rate_argument_is_the_one_used(x64):
    """η is passed once, as run's argument: settings without η get it; a different η in them is refused."""
    from derive.errors import DeriveInputError

    p = get_problem("quadratic1d")
    with pytest.raises(DeriveInputError, match="^settings: eta = 0.9 differs from the learning rate 0.25"):
        run(p, 0.25, 8, ["gd"], settings=Settings(eta=0.9))
    r = run(p, 0.25, 8, ["gd"], settings=Settings(rtol=1e-9))
    assert r.settings.eta == 0.25 and r.settings.rtol == 1e-9
    np.testing.assert_allclose(r.series["gd"]["w"][:, 0], 0.75 ** np.arange(9) * p.init[0], rtol=1e-13)


@pytest.mark.parametrize("eta", [1.05, 1.2])
def test_quartic_two_cycle_and_central_flow(x64, eta):
    p = get_problem("quartic", lr=eta)
    r = run(p, eta, 400, ["gd", "cf"])
    gd, cf = r.series["gd"], r.series["cf"]
    p_, q_ = p.known["cycle"]
    last = sorted(abs(gd["w"][-2:, 0]))
    assert abs(p_**2 + q_**2 - (eta + 1) / eta) < 1e-12 and abs(p_ * q_ - 1 / eta) < 1e-12
    assert np.allclose(last, sorted([p_, q_]), atol=1e-8), (last, (p_, q_))
    S = cf["eigs"][-1, 0]
    assert abs(S / (2 / eta) - 1) < 1e-3
    assert abs(abs(cf["w"][-1, 0]) - p.known["central_x"]) < 1e-4
    gd_avg = gd["loss"][-100:].mean()
    pred = cf["predicted_loss"][-1]
    rel = abs(pred - gd_avg) / gd_avg
    print(f"quartic η={eta}: GD time-averaged loss {gd_avg:.6f}, central-flow prediction {pred:.6f} "
          f"(relative gap {rel:.1%}: the cubic terms the theory drops)")
    assert abs(pred - p.known["central_predicted_loss"]) < 1e-4
    assert rel > 0.01       # documented: the prediction is visibly off here


def test_normal_form_exact_cycle_and_centre(x64):
    p = get_problem("normal_form")
    eta = p.known["lr"]
    r = run(p, eta, 600, ["gd", "cf", "gf"])
    gd, cf = r.series["gd"], r.series["cf"]
    (s1, z1), (s2, _) = p.known["cycle"]
    end = gd["w"][-2:]
    assert np.allclose(sorted(end[:, 0]), sorted([s1, s2]), atol=1e-8) and np.allclose(end[:, 1], z1, atol=1e-8)
    assert np.allclose(cf["w"][-1], p.known["center"], atol=1e-6)
    assert abs(cf["sigma_trace"][-1] - p.known["sigma2"]) < 1e-6
    assert abs(cf["predicted_loss"][-1] - p.known["average_loss"]) < 1e-6
    assert abs(gd["loss"][-2:].mean() - p.known["average_loss"]) < 1e-8
    print(f"normal form: σ² = {cf['sigma_trace'][-1]:.8f} (exact {p.known['sigma2']:.8f}), "
          f"predicted loss {cf['predicted_loss'][-1]:.8f} vs GD cycle average {gd['loss'][-2:].mean():.8f}")


def test_zhu_edge_of_stability(x64):
    p = get_problem("zhu")
    eta = p.known["lr"]
    steps = 600
    r = run(p, eta, steps, ["gd", "gf", "cf"])
    gd, cf, gf = r.series["gd"], r.series["cf"], r.series["gf"]
    two_over_eta = 2 / eta
    S_gd, S_cf = gd["eigs"][-1, 0], cf["eigs"][-1, 0]
    d_cf, d_gf = cf["distance_to_gd"][-1], gf["distance_to_gd"][-1]
    print(f"zhu η={eta}: GD sharpness {S_gd:.5f}, CF sharpness {S_cf:.6f}, 2/η = {two_over_eta}; "
          f"‖CF − GD‖ = {d_cf:.4f}, ‖GF − GD‖ = {d_gf:.4f}")
    assert 0.9 * two_over_eta < S_gd < two_over_eta
    assert abs(S_cf / two_over_eta - 1) < 1e-3
    assert np.nanmax(gd["eigs"][:, 0]) > two_over_eta          # GD did go past 2/η first
    assert d_cf < 0.25 * d_gf


def test_factorization_is_a_documented_failure_of_the_central_flow(x64):
    p = get_problem("factorization")
    eta = p.known["lr"]
    r = run(p, eta, 400, ["gd", "cf"])
    gd, cf = r.series["gd"], r.series["cf"]
    for k in range(5):
        assert abs(p.known["imbalance"](gd["w"][k + 1]) - p.known["imbalance_after_step"](gd["w"][k])) < 1e-10
    S_gd = gd["eigs"][-1, 0]
    print(f"factorization η={eta}: GD ends at sharpness {S_gd:.4f} = {S_gd * eta / 2:.3f}·(2/η); "
          f"the central flow ends at {cf['eigs'][-1, 0]:.4f}, ‖CF − GD‖ = {cf['distance_to_gd'][-1]:.4f}")
    assert S_gd < 0.95 * 2 / eta        # well below 2/η: the central flow's premise fails


def test_two_critical_eigenvalues_sdcp(x64):
    p = get_problem("two_eig")
    eta = p.known["lr"]
    r = run(p, eta, 600, ["gd", "cf"])
    cf = r.series["cf"]
    assert cf["n_critical"][-1] == 2
    assert np.allclose(sorted(cf["sigma_eigs"][-1][:2]), sorted(p.known["sigma2"]), atol=1e-6)
    # the SDCP at the final point, re-solved here: conditions to 1e-6
    w = jnp.asarray(cf["w"][-1])
    H = p.hess(w)
    vals, vecs = jnp.linalg.eigh(H)
    U = vecs[:, -2:][:, ::-1]
    m = derive.central_flow_multi(2)
    prog = derive.compile_operator(list(m.A) + list(m.B), p.loss)
    out = prog(w, eta=eta, u1=U[:, 0], u2=U[:, 1])
    A = jnp.array(out[:4]).reshape(2, 2) + jnp.diag(2 / eta - vals[-2:][::-1]) * 4
    B = jnp.array(out[4:]).reshape(3, 3)
    X, info = solve_sdcp(A, B, tol=1e-10)
    Q = A + jnp.array([[B[0] @ _pack(X), B[1] @ _pack(X)], [B[1] @ _pack(X), B[2] @ _pack(X)]])
    resid = (float(jnp.linalg.eigvalsh(X)[0]), float(jnp.linalg.eigvalsh(Q)[0]), float(jnp.sum(X * Q)))
    print(f"two_eig: X eigenvalues {np.linalg.eigvalsh(np.asarray(X))}, min eig X {resid[0]:.2e}, "
          f"min eig Q {resid[1]:.2e}, ⟨X, Q⟩ {resid[2]:.2e}; pinned eigenvalues {vals[-2:]} vs 2/η = {2 / eta}")
    assert resid[0] > -1e-6 and resid[1] > -1e-6 and abs(resid[2]) < 1e-6
    assert float(vals[-1]) <= 2 / eta * (1 + 1e-6)


def _pack(X):
    return jnp.array([X[0, 0], X[0, 1], X[1, 1]])


def test_symbolic_and_autodiff_problems_agree(x64):
    """Same loss as SymPy (generated kernels) and as a JAX pytree function (operator programs)."""
    from numeric import from_jax

    sym = get_problem("zhu")
    eta = sym.known["lr"]
    x0, y0 = sym.init
    auto = from_jax(lambda p: (p["x"] ** 2 * p["y"] ** 2 - 1) ** 2 / 4,
                    {"x": jnp.asarray(x0), "y": jnp.asarray(y0)}, name="zhu_autodiff")
    flows = ["gd", "gf", "mf", "cf", "midpoint"]
    a = run(sym, eta, 150, flows)
    b = run(auto, eta, 150, flows)
    for name in flows:
        err = np.max(np.abs(a.series[name]["w"] - b.series[name]["w"]))
        assert err < 1e-8, (name, err)


def test_eigensolver_failure_is_warned_and_recorded(x64):
    from numeric import from_jax

    rng = np.random.default_rng(0)
    M = rng.normal(size=(450, 450))
    A = jnp.asarray(M @ M.T / 450 + np.diag(np.linspace(0, 3, 450)))
    p = from_jax(lambda w: 0.5 * w @ A @ w, jnp.asarray(rng.normal(size=450)), dense_limit=0)
    s = Settings(eta=0.1, eig_iters=1, eig_tol=1e-14, log_eig_tol=1e-14)
    with pytest.warns(RuntimeWarning, match="eigensolver did not converge"):
        r = run(p, 0.1, 3, ["gd"], settings=s)
    assert any("eigensolver" in n for n in r.notes["gd"])
