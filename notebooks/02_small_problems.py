# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — Small problems with known answers: GD, gradient flow, modified flow, central flow
#
# Every problem here comes from the registry (`numeric.problems`) or is written as text, and every
# comparison is against an answer known in closed form (`problem.known`), never against another
# simulation alone. Processes, in units of GD steps τ (step k of every process is compared with GD's
# k-th iterate):
#
# * **gd** — gradient descent w ← w − η∇L;
# * **gf** — gradient flow dw/dτ = −η∇L;
# * **mf** — the order-1 modified flow, gradient flow on L + (η/4)‖∇L‖²;
# * **cf** — the central flow (Cohen et al. 2025), which pins the sharpness at 2/η;
# * **midpoint** — ¼(w_{k−1} + 2w_k + w_{k+1}) of GD, which removes a period-2 oscillation.
#
# Figures are written to the working directory. `GDFLOWS_NOTEBOOK_QUICK=1` (set by the test suite)
# runs a reduced version: fewer η values and shorter runs, same sections and checks.

# %%
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from numeric import Settings, make_process, run, summarize  # noqa: E402
from numeric.problems import REGISTRY, get_problem, list_problems, problem_from_string  # noqa: E402

QUICK = os.environ.get("GDFLOWS_NOTEBOOK_QUICK", "") not in ("", "0")
START = time.perf_counter()
print("mode:", "quick" if QUICK else "full")
for name, description in list_problems():
    spec = REGISTRY[name]
    print(f"  {name:14s} lr {spec.default_lr:<5} steps {spec.default_steps:<5} {description}")


def table(result):
    """One line per process from ``summarize``: status, final loss, sharpness·η/2, distance to GD."""
    s = summarize(result)
    two_over_eta = 2 / s["lr"]
    print(f"{s['problem']} at η = {s['lr']}, {s['steps']} steps")
    for proc in s["processes"]:
        e = s[proc]
        dist = e.get("final_distance_to_gd")
        ratio = e["final_sharpness"] / two_over_eta
        print(f"  {proc:9s} {e['status']:4s} loss {e['final_loss']:10.3e}  S/(2/η) {ratio:7.4f}"
              + ("" if dist is None else f"  |w − w_gd| {dist:.3e}"))
    return s


def pair_mean(x):
    """Average of consecutive entries, (x_k + x_{k+1})/2: GD's time average over a 2-cycle."""
    x = np.asarray(x)
    return 0.5 * (x[:-1] + x[1:])

# %% [markdown]
# ## 1. Quadratics: everything in closed form
# On ½λθ², GD is θ_k = (1 − ηλ)^k θ₀, gradient flow e^{−λkη}θ₀, and the order-1 modified flow
# e^{−(λ + ηλ²/2)kη}θ₀ (`problem.known["gd"|"gf"|"mf1"]`). On the 5-D quadratic ½(w−w*)ᵀA(w−w*) the
# same holds with matrix exponentials of A and A + ηA²/2. The simulated flows are diffrax solves, so
# their error against the closed forms measures the ODE tolerance (rtol 1e-8); GD is exact arithmetic.
# The mismatch *between* GD and each flow is the discretization error the modified flow is meant to shrink.

# %%
p1 = get_problem("quadratic1d")
eta1, steps1 = p1.known["lr"], REGISTRY["quadratic1d"].default_steps
r1 = run(p1, eta1, steps1, ["gd", "gf", "mf"])
k = np.arange(steps1 + 1)
print(f"½λθ², λ = {p1.known['lam']}, η = {eta1}, θ₀ = {p1.known['theta0']}")
for proc, key in (("gd", "gd"), ("gf", "gf"), ("mf", "mf1")):
    err = np.max(np.abs(r1.series[proc]["w"][:, 0] - p1.known[key](k)))
    gap = np.max(r1.series[proc]["distance_to_gd"])
    print(f"  {proc}: max |simulated − closed form| = {err:.2e};  max |{proc} − gd| = {gap:.3e}")
    assert err < 1e-7, (proc, err)
assert np.max(r1.series["mf"]["distance_to_gd"]) < np.max(r1.series["gf"]["distance_to_gd"])

# %%
p2 = get_problem("quadratic")
eta2, steps2 = p2.known["lr"], (100 if QUICK else REGISTRY["quadratic"].default_steps)
A, w_star, w0 = p2.known["A"], p2.known["w_star"], p2.init
r2 = run(p2, eta2, steps2, ["gd", "gf", "mf"])
lam, V = np.linalg.eigh(A)


def linear_flow(rate_eigs, tau):
    """w* + V exp(−η·rate·τ) Vᵀ(w₀ − w*) for every τ (rate = eigenvalues of the flow's matrix)."""
    decay = np.exp(-eta2 * np.outer(tau, rate_eigs))                       # (T, n)
    return w_star + (decay * ((w0 - w_star) @ V)) @ V.T


tau = np.arange(steps2 + 1)
closed = {"gd": np.array([p2.known["iterate"](i) for i in tau]),
          "gf": linear_flow(lam, tau),
          "mf": linear_flow(lam + eta2 * lam**2 / 2, tau)}
print(f"5-D quadratic, eigenvalues {p2.known['eigenvalues']}, η = {eta2}: ηλ_max = {eta2 * lam.max():.2f} "
      f"(GD stable: {p2.known['gd_stable']}; it oscillates along the top eigenvector since ηλ_max > 1)")
for proc in ("gd", "gf", "mf"):
    err = np.max(np.abs(r2.series[proc]["w"] - closed[proc]))
    print(f"  {proc}: max |simulated − closed form| = {err:.2e};  max |{proc} − gd| = "
          f"{np.max(r2.series[proc]['distance_to_gd']):.3e}")
    assert err < 1e-6, (proc, err)
print("  sharpness tracked by every process:", {p: float(r2.series[p]["eigs"][0, 0]) for p in r2.series})
assert abs(r2.series["gd"]["eigs"][0, 0] - p2.known["eigenvalues"][0]) < 1e-8

# %% [markdown]
# ## 2. Modified-flow accuracy: local error against η
# One GD step against one unit of τ of each flow from the same point, on a smooth non-quadratic loss.
# Backward error analysis predicts ‖flow − GD‖ = O(η²) for gradient flow, O(η³) for the order-1
# modified flow and O(η⁴) at order 2. The step is the same `make_process(...).step` that `run` scans,
# jitted once with η traced, with tight ODE tolerances so that the solver error stays far below the
# local error.

# %%
local_problems = [problem_from_string("exp(x*y)/2 + (x-1)^4/4 + sin(y)", "x=0.4,y=-0.7", name="smooth")]
if not QUICK:
    local_problems.append(get_problem("zhu", init="x=1.3,y=0.6"))
etas_local = 0.005 * 2.0 ** np.arange(4 if QUICK else 5)   # ηS ≲ 0.25: the asymptotic regime
flows_local = [("gf", 1, 2.0), ("mf", 1, 3.0), ("mf", 2, 4.0)]
local = {}


def one_step_error(problem, proc_name, order):
    w_start = jnp.asarray(problem.init)

    def distance(eta):
        s = Settings(eta=eta, rtol=1e-13, atol=1e-16, mf_order=order)
        proc = make_process(proc_name, problem, s)
        return jnp.linalg.norm(proc.step(proc.init(w_start)).w - (w_start - eta * problem.grad(w_start)))

    return jax.jit(distance)


for problem in local_problems:
    for proc_name, order, expected in flows_local:
        dist = one_step_error(problem, proc_name, order)
        errors = np.array([float(dist(e)) for e in etas_local])
        slope = np.polyfit(np.log(etas_local), np.log(errors), 1)[0]
        local[(problem.name, proc_name, order)] = errors
        print(f"  {problem.name:6s} {proc_name} order {order}: slope {slope:5.2f} (theory {expected:.0f}); "
              f"errors {', '.join(f'{e:.1e}' for e in errors)}")
        assert abs(slope - expected) < 0.35, (problem.name, proc_name, order, slope)

fig, ax = plt.subplots(figsize=(5.5, 4))
colors = {("gf", 1): "C0", ("mf", 1): "C1", ("mf", 2): "C2"}
for i, ((pname, proc_name, order), errors) in enumerate(local.items()):
    ax.loglog(etas_local, errors, "os"[i // 3 % 2] + "-", color=colors[(proc_name, order)],
              label=f"{pname}: {proc_name} (order {order})")
    if pname == local_problems[0].name:   # reference slopes through the first point
        power = {("gf", 1): 2, ("mf", 1): 3, ("mf", 2): 4}[(proc_name, order)]
        ax.loglog(etas_local, errors[0] * (etas_local / etas_local[0]) ** power, "k:", lw=1,
                  label="η², η³, η⁴" if power == 2 else None)
ax.set_xlabel("η")
ax.set_ylabel("‖flow(τ = 1) − GD step‖")
ax.set_title("local error of gradient / modified flows")
ax.legend(fontsize=7)
fig.tight_layout()
plt.savefig("02_local_error.png", dpi=110)
plt.close(fig)

# %% [markdown]
# ## 3. Edge of stability on Zhu et al.'s ¼(x²y² − 1)²
# On the minima x²y² = 1 the sharpness is 2(x² + y²). From (2.5, 0.2) at η = 0.2 the first GD step
# already reaches 2/η = 10. GD then oscillates across the valley (period 2) while drifting along it to
# flatter points; the sharpness at its iterates swings around 2/η (between about 0.1 and 2 × 2/η at first)
# with an amplitude that decays over ~300 steps, and GD ends just below 2/η. The GD midpoint removes
# the swing. Gradient flow (and the modified flow) simply slide into the nearest
# minimum, sharpness ≈ 13 > 2/η. The central flow keeps S = 2/η exactly and ends at the point of the
# valley with S = 2/η, known in closed form (`known["central_endpoint"]`).

# %%
pz = get_problem("zhu")
eta_z = pz.known["lr"]
steps_z = 400 if QUICK else REGISTRY["zhu"].default_steps
rz = run(pz, eta_z, steps_z, ["gd", "gf", "mf", "cf", "midpoint"])
sz = table(rz)
Sz = {p: rz.series[p]["eigs"][:, 0] for p in rz.series}
above = np.flatnonzero(Sz["gd"] >= 2 / eta_z)
print(f"GD: S ≥ 2/η first at step {above[0]}, last at step {above[-1]}; "
      f"max S/(2/η) = {np.nanmax(Sz['gd']) * eta_z / 2:.3f}")
end_cf, end_known = rz.series["cf"]["w"][-1], np.array(pz.known["central_endpoint"])
print(f"CF endpoint {end_cf} vs closed form {end_known}: error {np.linalg.norm(end_cf - end_known):.1e}")
print(f"CF: S/(2/η) at step 1 = {Sz['cf'][1] * eta_z / 2:.4f} (one Euler-discretized GF step overshoots before "
      f"the edge switches on), max |S_cf − 2/η| from step 2 on: {np.nanmax(np.abs(Sz['cf'][2:] - 2 / eta_z)):.1e};  "
      f"max |w_cf − w_gd| = {np.max(rz.series['cf']['distance_to_gd']):.3f}, "
      f"final {rz.series['cf']['distance_to_gd'][-1]:.4f}")
print(f"GF endpoint S = {Sz['gf'][-1]:.3f} (its own minimum: 2(x² + y²) = "
      f"{pz.known['minimum_sharpness'](rz.series['gf']['w'][-1]):.3f})")
assert np.linalg.norm(end_cf - end_known) < (1e-3 if QUICK else 1e-6)   # the quick run stops before convergence
assert np.nanmax(np.abs(Sz["cf"][2:] - 2 / eta_z)) < 1e-4 * 2 / eta_z
assert Sz["gf"][-1] > 1.2 * 2 / eta_z
if not QUICK:
    assert 0.95 * 2 / eta_z < Sz["gd"][-1] < 2 / eta_z
    assert rz.series["cf"]["distance_to_gd"][-1] < 0.05

# %% [markdown]
# The central flow's predicted loss L(w) + σ²/η is meant to track GD's *time-averaged* loss while GD
# oscillates (here: the mean of consecutive steps).

# %%
gd_avg = pair_mean(rz.series["gd"]["loss"])
pred = rz.series["cf"]["predicted_loss"][:-1]
for kk in (10, 50, 100, 200, 300):
    if kk < len(pred):
        print(f"  step {kk:4d}: GD 2-step mean loss {gd_avg[kk]:.3e}, CF predicted {pred[kk]:.3e}, "
              f"CF loss {rz.series['cf']['loss'][kk]:.3e}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
tau_z = np.arange(steps_z + 1)
for proc, style in (("gd", dict(lw=0.4, marker=".", ms=2, color="C0")), ("gf", dict(color="C1")),
                    ("mf", dict(ls="--", color="C2")),
                    ("cf", dict(lw=2, color="C3")), ("midpoint", dict(ls=":", color="C4"))):
    axes[0].plot(tau_z, Sz[proc], label=proc, **style)
    if proc != "gd":
        axes[1].semilogy(tau_z[1:], rz.series[proc]["distance_to_gd"][1:], label=proc, **style)
axes[0].axhline(2 / eta_z, color="k", ls="--", lw=1, label="2/η")
axes[0].set_xscale("symlog", linthresh=10)
axes[0].set_xlim(0, steps_z)
axes[0].set_xlabel("step (τ)")
axes[0].set_ylabel("sharpness S = λ_max(∇²L)")
axes[0].set_title(f"zhu, η = {eta_z}: sharpness")
axes[0].legend(loc="lower right", fontsize=8)
axes[1].set_xlabel("step (τ)")
axes[1].set_ylabel("‖w − w_gd‖")
axes[1].set_title("distance to GD")
axes[1].legend()
fig.tight_layout()
plt.savefig("03_zhu_sharpness.png", dpi=110)
plt.close(fig)

# %% [markdown]
# Full size only: the same comparison at other learning rates. The central flow's endpoint is the
# closed-form point x² + y² = 1/η of the valley (`known["central_endpoint_fn"]`); GD ends just below 2/η.

# %%
if not QUICK:
    for eta in (0.25, 0.3):
        p = get_problem("zhu", lr=eta)
        r = run(p, eta, 1000, ["gd", "cf"])
        end = np.array(p.known["central_endpoint"])
        err = np.linalg.norm(r.series["cf"]["w"][-1] - end)
        print(f"  η = {eta}: GD final S/(2/η) = {r.series['gd']['eigs'][-1, 0] * eta / 2:.4f}, "
              f"CF final S/(2/η) = {r.series['cf']['eigs'][-1, 0] * eta / 2:.6f}, CF endpoint error {err:.1e}, "
              f"|w_cf − w_gd| = {r.series['cf']['distance_to_gd'][-1]:.4f}, status {r.status}")
        assert err < 1e-5

# %% [markdown]
# ## 4. The normal form ½(1 + z)x² + ½(z − z*)²: an exact 2-cycle
# The sharpness is 1 + z. GD converges to the 2-cycle (±σ, z_e) with z_e = 2/η − 1 and σ² = 2(z* − z_e),
# stable when σ² < 1/η. The central flow should sit at the cycle's centre (0, z_e) with Σ = σ², and
# its predicted loss L + σ²/η equals the loss on the cycle exactly (`known["average_loss"]`).
# The GD midpoint ¼(w_{k−1} + 2w_k + w_{k+1}) lands on the centre too.

# %%
nf_etas = (0.8,) if QUICK else (0.75, 0.8, 0.85)
nf_results = {}
for eta in nf_etas:
    p = get_problem("normal_form", lr=eta)
    r = run(p, eta, 300, ["gd", "cf", "midpoint"])
    kn = p.known
    nf_results[eta] = (p, r)
    cyc = np.array(kn["cycle"])
    w_gd = r.series["gd"]["w"]
    cycle_err = min(np.linalg.norm(w_gd[-1] - cyc[0]) + np.linalg.norm(w_gd[-2] - cyc[1]),
                    np.linalg.norm(w_gd[-1] - cyc[1]) + np.linalg.norm(w_gd[-2] - cyc[0]))
    cf_w, cf_sigma, cf_pred = r.series["cf"]["w"][-1], r.series["cf"]["sigma_trace"][-1], \
        r.series["cf"]["predicted_loss"][-1]
    gd_mean = pair_mean(r.series["gd"]["loss"])[-1]
    print(f"η = {eta}: z_e = {kn['z_e']:.4f}, σ² = {kn['sigma2']:.4f} (cycle stable: {kn['cycle_stable']})")
    d_gd = np.min(np.linalg.norm(w_gd[:, None, :] - cyc[None], axis=2), axis=1)
    d_cf = np.linalg.norm(r.series["cf"]["w"] - np.array(kn["center"]), axis=1)
    settle = {name: int(np.flatnonzero(d >= 1e-3)[-1]) + 1 for name, d in (("gd", d_gd), ("cf", d_cf))}
    print(f"  GD last two iterates vs exact cycle: error {cycle_err:.1e}; within 1e-3 of the cycle from step "
          f"{settle['gd']}, CF within 1e-3 of the centre from step {settle['cf']}")
    print(f"  CF final w = ({cf_w[0]:.2e}, {cf_w[1]:.6f}), Σ = {cf_sigma:.6f}, predicted loss {cf_pred:.6f}")
    print(f"  GD mean loss over the last two steps {gd_mean:.6f}; exact cycle loss {kn['average_loss']:.6f}")
    print(f"  midpoint final {r.series['midpoint']['w'][-1]}, |midpoint − cf| = "
          f"{np.linalg.norm(r.series['midpoint']['w'][-1] - cf_w):.1e}")
    assert cycle_err < 1e-6
    assert np.linalg.norm(cf_w - np.array(kn["center"])) < 1e-6
    assert abs(cf_sigma - kn["sigma2"]) < 1e-6 and abs(cf_pred - kn["average_loss"]) < 1e-6
    assert abs(gd_mean - kn["average_loss"]) < 1e-6

p_nf, r_nf = nf_results[0.8]
eta_nf = p_nf.known["lr"]
tau_nf = np.arange(301)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
axes[0].plot(tau_nf, r_nf.series["gd"]["w"][:, 0], ".", ms=2, label="gd x")
axes[0].plot(tau_nf, r_nf.series["cf"]["w"][:, 0], lw=2, label="cf x")
for sgn in (1, -1):
    axes[0].axhline(sgn * np.sqrt(p_nf.known["sigma2"]), color="k", ls=":", lw=1)
axes[0].set_title("x: GD flips sign, CF sits at 0 (dotted: ±σ)")
axes[1].plot(tau_nf, r_nf.series["gd"]["w"][:, 1], label="gd z")
axes[1].plot(tau_nf, r_nf.series["cf"]["w"][:, 1], lw=2, ls="--", label="cf z")
axes[1].axhline(p_nf.known["z_e"], color="k", ls=":", lw=1, label="z_e = 2/η − 1")
axes[1].set_title("z (sharpness − 1)")
axes[2].semilogy(tau_nf, r_nf.series["gd"]["loss"], lw=0.6, alpha=0.6, label="gd loss")
axes[2].semilogy(tau_nf[:-1], pair_mean(r_nf.series["gd"]["loss"]), label="gd 2-step mean")
axes[2].semilogy(tau_nf, r_nf.series["cf"]["predicted_loss"], ls="--", lw=2, label="cf predicted loss")
axes[2].semilogy(tau_nf, r_nf.series["cf"]["loss"], ls=":", label="cf loss L(w_cf)")
axes[2].axhline(p_nf.known["average_loss"], color="k", ls=":", lw=1)
axes[2].set_title("loss")
for ax in axes:
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, 300)
    ax.set_xlabel("step (τ)")
    ax.legend(fontsize=8)
fig.suptitle(f"normal form, z* = {p_nf.known['z_star']}, η = {eta_nf}")
fig.tight_layout()
plt.savefig("04_normal_form.png", dpi=110)
plt.close(fig)

# %% [markdown]
# The central flow reaches the centre in a few steps, GD's cycle only after its x-oscillation has grown
# from x₀ = 0.1 (meanwhile z overshoots to z*): during that transient the central flow describes where
# GD *will* oscillate, not what it does yet.
#
# For contrast, the quartic ¼(x²−1)² (1 < η < √5 − 1) also has an exact GD 2-cycle (p, q), but an
# asymmetric one: the central flow, a second-order (quadratic) model of the oscillation, misses the
# cubic terms, and its predicted loss is about 10% below the cycle's mean loss. Both sides are closed
# forms in `problem.known`; the simulations reproduce each.

# %%
for eta in ((1.05,) if QUICK else (1.05, 1.2)):
    p = get_problem("quartic", lr=eta)
    r = run(p, eta, 300, ["gd", "cf", "midpoint"])
    kn = p.known
    gd_last = np.sort(r.series["gd"]["w"][-2:, 0])[::-1]
    cf_x, cf_pred = r.series["cf"]["w"][-1, 0], r.series["cf"]["predicted_loss"][-1]
    rel = (cf_pred - kn["cycle_average_loss"]) / kn["cycle_average_loss"]
    print(f"quartic η = {eta}: GD cycle {gd_last} (exact {np.array(kn['cycle'])}); "
          f"cycle mean loss {np.mean(r.series['gd']['loss'][-2:]):.6f} (exact {kn['cycle_average_loss']:.6f})")
    print(f"  CF x = {cf_x:.6f} (closed form {kn['central_x']:.6f}), Σ = {r.series['cf']['sigma_trace'][-1]:.6f} "
          f"({kn['central_sigma2']:.6f}), predicted loss {cf_pred:.6f} ({kn['central_predicted_loss']:.6f}): "
          f"{100 * rel:+.1f}% against GD; midpoint x = {r.series['midpoint']['w'][-1, 0]:.6f}")
    assert np.max(np.abs(gd_last - np.array(kn["cycle"]))) < 1e-6
    assert abs(cf_x - kn["central_x"]) < 1e-6 and abs(cf_pred - kn["central_predicted_loss"]) < 1e-6
    assert -0.2 < rel < -0.05

# %% [markdown]
# ## 5. Phase portraits in the (x, y) plane
# Level sets of the loss with GD's iterates (points) and the flows (lines). The thick grey curve is
# the valley of minima; the dashed circle is where, on the valley, the sharpness equals 2/η
# (x² + y² = 1/η for zhu, x² + y² = 2/η for ½(xy − 1)², whose sharpness on the valley is x² + y²).
# The central flow runs into that point and stops; gradient and modified flows reach the valley
# where it is sharper. ½(xy − 1)² is built from text here (it is also registered as `factorization`).

# %%
pf = problem_from_string("(x*y - 1)^2/2", "x=2.5,y=0.1", name="xy")
eta_f = REGISTRY["factorization"].default_lr
steps_f = 200 if QUICK else REGISTRY["factorization"].default_steps
rf = run(pf, eta_f, steps_f, ["gd", "gf", "mf", "cf", "midpoint"])


def portrait(ax, result, loss2d, valley, radius2, title):
    W = {p: result.series[p]["w"] for p in result.series}
    pts = np.concatenate([W[p] for p in ("gd", "gf", "mf", "cf")])
    lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
    pad = 0.15 * (hi - lo) + 0.05
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 300)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 300)
    X, Y = np.meshgrid(xs, ys)
    Z = loss2d(X, Y)
    levels = np.geomspace(1e-4, max(float(Z.max()), 1e-3), 14)
    ax.contourf(X, Y, np.log10(Z + 1e-6), levels=30, cmap="Blues_r", alpha=0.35)
    ax.contour(X, Y, Z, levels=levels, colors="0.45", linewidths=0.5)
    ax.plot(xs, valley(xs), color="0.6", lw=4, alpha=0.5, label="minima")
    th = np.linspace(0, np.pi / 2, 400)
    ax.plot(np.sqrt(radius2) * np.cos(th), np.sqrt(radius2) * np.sin(th), "k--", lw=1, label="S = 2/η on minima")
    ax.plot(W["gd"][:, 0], W["gd"][:, 1], "-", lw=0.3, color="C0", alpha=0.5)
    ax.plot(W["gd"][:, 0], W["gd"][:, 1], ".", ms=4, color="C0", label="gd (iterates)")
    ax.plot(W["gf"][:, 0], W["gf"][:, 1], color="C1", lw=1.5, label="gf")
    ax.plot(W["mf"][:, 0], W["mf"][:, 1], color="C2", lw=1.5, ls="--", label="mf")
    ax.plot(W["cf"][:, 0], W["cf"][:, 1], color="C3", lw=2, label="cf")
    ax.plot(*W["gd"][0], "k*", ms=10, label="start")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best", framealpha=0.9)


fig, axes = plt.subplots(1, 2, figsize=(12, 5))
portrait(axes[0], rz, lambda X, Y: (X**2 * Y**2 - 1) ** 2 / 4, lambda x: 1 / x, 1 / eta_z,
         f"¼(x²y² − 1)², η = {eta_z}")
portrait(axes[1], rf, lambda X, Y: (X * Y - 1) ** 2 / 2, lambda x: 1 / x, 2 / eta_f, f"½(xy − 1)², η = {eta_f}")
fig.tight_layout()
plt.savefig("05_phase_portraits.png", dpi=110)
plt.close(fig)
for label, r in (("zhu", rz), ("½(xy−1)²", rf)):
    print(f"{label}: final points " + ", ".join(f"{p} ({r.series[p]['w'][-1][0]:.4f}, {r.series[p]['w'][-1][1]:.4f})"
                                                 for p in ("gd", "gf", "mf", "cf")))

# %% [markdown]
# ## 6. A documented failure: ½(xy − 1)², where GD ends well below 2/η
# From (2.5, 0.1) the sharpness already exceeds 2/η = 5.71 at η = 0.35. GD does not hover at the edge:
# within a few steps it makes large oscillations across the valley, and each step multiplies the
# imbalance x² − y² by exactly 1 − η²(xy − 1)² (`known["imbalance_after_step"]`), so the imbalance —
# which gradient flow conserves — collapses during the catapult and GD lands at a point of the valley
# with sharpness well *below* 2/η. The central flow assumes small oscillations with S held at 2/η; it
# flows to the point of the valley with S = 2/η instead, a different minimum. This is the case the
# central flow is documented not to capture (`known["central_flow_accurate"] = False`).

# %%
pfac = get_problem("factorization")
assert pfac.known["central_flow_accurate"] is False
Sf = {p: rf.series[p]["eigs"][:, 0] for p in rf.series}
w_gd = rf.series["gd"]["w"]
law = np.array([pfac.known["imbalance_after_step"](w, eta_f) for w in w_gd[:-1]])
imb = {p: rf.series[p]["w"][:, 0] ** 2 - rf.series[p]["w"][:, 1] ** 2 for p in rf.series}
law_err = np.max(np.abs(imb["gd"][1:] - law))
table(rf)
print(f"2/η = {2 / eta_f:.4f}; initial S/(2/η) = {Sf['gd'][0] * eta_f / 2:.3f}")
print(f"GD: max loss {np.max(rf.series['gd']['loss']):.3f} (step {int(np.argmax(rf.series['gd']['loss']))}), "
      f"S/(2/η) after 10 steps {Sf['gd'][10] * eta_f / 2:.4f}, final {Sf['gd'][-1] * eta_f / 2:.4f}")
print(f"GD final S = {Sf['gd'][-1]:.4f} vs x² + y² at its final point {pfac.known['minimum_sharpness'](w_gd[-1]):.4f}")
print(f"imbalance x² − y²: start {imb['gd'][0]:.4f}; final gd {imb['gd'][-1]:.4f}, gf {imb['gf'][-1]:.4f}, "
      f"cf {imb['cf'][-1]:.4f}; exact per-step law error along GD {law_err:.1e}")
print(f"CF: final S/(2/η) = {Sf['cf'][-1] * eta_f / 2:.6f}, final |w_cf − w_gd| = "
      f"{rf.series['cf']['distance_to_gd'][-1]:.4f} (the midpoint: {rf.series['midpoint']['distance_to_gd'][-1]:.1e})")
print(f"CF predicted loss at step 1, 2, 5: {rf.series['cf']['predicted_loss'][[1, 2, 5]]}, "
      f"GD 2-step mean loss: {pair_mean(rf.series['gd']['loss'])[[1, 2, 5]]}")
assert law_err < 1e-10
assert abs(imb["gf"][-1] - imb["gf"][0]) < 1e-6
assert Sf["gd"][-1] < 0.8 * 2 / eta_f and abs(Sf["cf"][-1] - 2 / eta_f) < 1e-3
assert rf.series["cf"]["distance_to_gd"][-1] > 0.2

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
tau_f = np.arange(steps_f + 1)
for proc, style in (("gd", dict(lw=0.8, marker=".", ms=3, color="C0")), ("gf", dict(color="C1")),
                    ("mf", dict(ls="--", color="C2")), ("cf", dict(lw=2, color="C3")),
                    ("midpoint", dict(ls=":", color="C4"))):
    axes[0].plot(tau_f, Sf[proc], label=proc, **style)
    axes[1].plot(tau_f, imb[proc], label=proc, **style)
axes[0].axhline(2 / eta_f, color="k", ls="--", lw=1, label="2/η")
axes[0].set_ylabel("sharpness")
axes[0].set_title(f"½(xy − 1)², η = {eta_f}: GD ends at {Sf['gd'][-1] * eta_f / 2:.2f}·2/η")
axes[1].set_ylabel("imbalance x² − y²")
axes[1].set_title("GD's catapult shrinks the imbalance; GF conserves it")
for ax in axes:
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, steps_f)
    ax.set_xlabel("step (τ)")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.savefig("06_factorization_failure.png", dpi=110)
plt.close(fig)

# %%
print(f"notebook 02 done in {time.perf_counter() - START:.1f} s ({'quick' if QUICK else 'full'} mode)")
