"""RMSProp's stable and central flows (numeric/adaptive.py): fixed points on the normal-form model
derived here by hand, the stable flow against a hand-written float64 RK4 oracle, and the
process/CLI wiring (names, summary fields, one-line errors)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from numeric.adaptive import RMSProp, rmsprop_central_flow, rmsprop_stable_flow
from numeric.cli import main
from numeric.driver import run, summarize
from numeric.problems import problem_from_string
from numeric.processes import Settings

Z_STAR, LR = 1.5, 0.2
MODEL = f"(1+z)*x^2/2 + (z-{Z_STAR})^2/2"


def _advance(proc, state, steps):
    body = jax.jit(lambda st: jax.lax.scan(lambda s, _: (proc.step(s), None), st, None, length=steps)[0])
    return body(state)


def _model(init="x=0.1,z=1.3"):
    return problem_from_string(MODEL, init, params="x,z")


def test_scalar_central_flow_reaches_its_fixed_point(x64):
    """The fixed point solved by SymPy from S_eff = 2, dz/dτ = 0 and dν/dτ = 0 (written by hand, as in
    tests/test_adaptive.py): z − z* + σ²/2 = 0, (z − z*)² + σ²(1+z)² = ν, η(1+z) = 2√ν."""
    z, s2, nu = sp.symbols("z s2 nu", positive=True)
    lr, zs = sp.nsimplify(LR), sp.nsimplify(Z_STAR)
    sols = [s for s in sp.solve([lr * (1 + z) - 2 * sp.sqrt(nu), z - zs + s2 / 2,
                                 (z - zs) ** 2 + s2 * (1 + z) ** 2 - nu], [z, s2, nu], dict=True) if s[z] > -1]
    (sol,) = sols
    p = _model()
    proc = rmsprop_central_flow(p, Settings(eta=LR, k_max=2), RMSProp(beta2=0.9))
    state = _advance(proc, proc.init(jnp.asarray(p.init)), 1500)
    obs = proc.observe(state)
    assert abs(float(state.w[0])) < 1e-9
    assert abs(float(state.w[1]) - float(sol[z])) < 1e-9
    assert abs(float(state.nu) - float(sol[nu])) < 1e-9
    assert abs(float(obs["eigs"][0]) - 2) < 1e-9 and abs(float(obs["sigma_trace"]) - float(sol[s2])) < 1e-8


def test_diagonal_central_flow_reaches_its_fixed_point(x64):
    """Both coordinates at the edge: z = z* − η²/8, ν_x = (1+z)²η²/4, ν_z = η²/4 (solved by hand in
    tests/test_preconditioned.py); two critical directions, so the k = 2 SDCP runs."""
    p = _model()
    proc = rmsprop_central_flow(p, Settings(eta=LR, k_max=2), RMSProp(beta2=0.9, diagonal=True))
    state = _advance(proc, proc.init(jnp.asarray(p.init)), 1500)
    z = Z_STAR - LR**2 / 8
    np.testing.assert_allclose(np.asarray(state.w), [0.0, z], atol=1e-9)
    np.testing.assert_allclose(np.asarray(state.nu), [(1 + z) ** 2 * LR**2 / 4, LR**2 / 4], rtol=1e-9)
    assert int(state.n_critical) == 2
    np.testing.assert_allclose(np.asarray(proc.observe(state)["eigs"]), [2.0, 2.0], rtol=1e-9)


def _rk4_oracle(w, nu, t, steps, diagonal, lr, b2, eps, bias, substeps=200):
    """dw/dτ = −η g/(√ν̂ + ε), dν/dτ = ((1−β₂)/β₂)(g² − ν), ν̂ = ν/(1−β₂ᵗ), t = 1 + τ: plain NumPy RK4."""
    def grad(w):
        x, z = w
        return np.array([(1 + z) * x, x * x / 2 + z - Z_STAR])

    def rhs(t, y):
        w, nu = y[:2], y[2:] if diagonal else y[2]
        g = grad(w)
        nu_hat = nu / (1 - b2**t) if bias else nu
        wd = -lr * g / (np.sqrt(nu_hat) + eps)
        nd = (1 - b2) / b2 * ((g * g if diagonal else g @ g) - nu)
        return np.concatenate([wd, np.atleast_1d(nd)])

    y, h = np.concatenate([w, np.atleast_1d(nu)]), 1.0 / substeps
    for _ in range(steps * substeps):
        k1 = rhs(t, y)
        k2 = rhs(t + h / 2, y + h / 2 * k1)
        k3 = rhs(t + h / 2, y + h / 2 * k2)
        k4 = rhs(t + h, y + h * k3)
        y, t = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + h
    return y


@pytest.mark.parametrize("diagonal", [False, True])
def test_stable_flow_against_a_float64_rk4_oracle(diagonal, x64):
    opt = RMSProp(beta2=0.95, eps=1e-3, bias_correction=True, diagonal=diagonal)
    p = _model("x=0.3,z=0.4")
    proc = rmsprop_stable_flow(p, Settings(eta=0.05, k_max=2), opt)
    state0 = proc.init(jnp.asarray(p.init))
    g0 = np.array([(1 + 0.4) * 0.3, 0.3**2 / 2 + 0.4 - Z_STAR])     # the flows start after one EMA update
    nu1 = (1 - 0.95) * (g0 * g0 if diagonal else g0 @ g0)
    np.testing.assert_allclose(np.asarray(state0.nu), nu1, rtol=1e-12)
    state = _advance(proc, state0, 20)
    expect = _rk4_oracle(np.array([0.3, 0.4]), nu1, 1.0, 20, diagonal, 0.05, 0.95, 1e-3, True)
    got = np.concatenate([np.asarray(state.w), np.atleast_1d(np.asarray(state.nu))])
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-9)


def test_midpoint_of_the_exact_two_cycle_is_its_centre(x64):
    """On the normal form scalar RMSProp cycles between x = ±η/2 at z = z* − η²/8 (tests/test_rmsprop.py):
    ¼(w_{t−1} + 2w_t + w_{t+1}) = (0, z) exactly, and its effective curvature along x is 2."""
    from numeric.adaptive import rmsprop_midpoint

    z = Z_STAR - LR**2 / 8
    nu = (1 + z) ** 2 * LR**2 / 4
    p = _model(f"x={0.8 * LR / 2!r},z={z + 0.05!r}")
    proc = rmsprop_midpoint(p, Settings(eta=LR, k_max=2), RMSProp(beta2=0.9, nu0=nu))
    state = _advance(proc, proc.init(jnp.asarray(p.init)), 6000)
    np.testing.assert_allclose(np.asarray(state.mid), [0.0, z], atol=1e-7)
    assert abs(float(proc.observe(state)["eigs"][0]) - 2.0) < 1e-6


def test_warm_start_starts_every_process_from_the_warmed_up_state(x64):
    p = _model()
    opt = RMSProp(beta2=0.9, warm_start=7)
    r = run(p, LR, 3, optimizer=opt)
    assert r.discrete == "rmsprop" and list(r.series) == ["rmsprop", "sf", "cf", "midpoint"]
    w0 = np.asarray([r.series[n]["w"][0] for n in ("rmsprop", "sf", "cf")])
    assert np.all(w0 == w0[0]) and not np.allclose(w0[0], p.init)
    assert all(r.series[n]["distance_to_discrete"][0] == 0 for n in ("rmsprop", "sf", "cf"))


def test_summary_fields_of_an_rmsprop_run(x64):
    r = run(_model(), LR, 60, ["rmsprop-diag", "sf", "cf"], optimizer=RMSProp(beta2=0.9, diagonal=True))
    s = summarize(r)
    assert s["discrete"] == "rmsprop-diag" and s["optimizer"]["diagonal"] is True
    for name in ("rmsprop-diag", "sf", "cf"):
        e = s[name]
        for key in ("final_distance_to_discrete", "max_distance_to_discrete", "final_effective_sharpness",
                    "final_nu", "mean_nu_tail"):
            assert e[key] is not None and np.isfinite(e[key]), (name, key)
        assert "final_distance_to_gd" not in e
    vec = r.series["cf"]["nu_vector"]
    assert vec.shape == (61, 2) and np.allclose(vec.mean(axis=1), r.series["cf"]["nu"])
    assert s["cf"]["final_nu"] == pytest.approx(float(vec[-1].mean()))


def test_gd_summaries_keep_the_gd_names(x64):
    s = summarize(run(_model(), 0.1, 5, ["gd", "gf"]))
    assert s["discrete"] == "gd"
    assert s["gf"]["final_distance_to_gd"] == s["gf"]["final_distance_to_discrete"]
    assert s["gf"]["final_effective_sharpness"] == pytest.approx(0.1 * s["gf"]["final_sharpness"])


@pytest.mark.parametrize("argv, needle", [
    (["run", "--problem", "zhu", "--optimizer", "rmsprop", "--flows", "gd,cf"], "flows: unknown ['gd'] with --optimizer rmsprop"),
    (["run", "--problem", "zhu", "--optimizer", "rmsprop", "--beta2", "1.5"], "--beta2: must be in (0, 1)"),
    (["compare", "--optimizer", "rmsprop-diag", "--eps", "-1"], "--eps: must be a finite number ≥ 0"),
    (["compare", "--optimizer", "adam"], "--optimizer"),
    (["compare", "--optimizer", "rmsprop", "--warm-start", "x"], "--warm-start: expected an integer"),
])
def test_bad_optimizer_options_are_one_line_errors(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_run_cli_with_rmsprop_writes_its_summary(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["run", "--loss", MODEL, "--init", "x=0.1,z=1.3", "--params", "x,z", "--lr", str(LR), "--steps", "40",
                 "--optimizer", "rmsprop", "--beta2", "0.9", "--out", str(out)])
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["processes"] == ["rmsprop", "sf", "cf"] and s["discrete"] == "rmsprop"   # as compare, and run's help
    assert "S_eff" in capsys.readouterr().out
