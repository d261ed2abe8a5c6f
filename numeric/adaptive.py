"""Adaptive optimizers as preconditioned GD w ← w − P⁻¹∇L: scalar and diagonal RMSProp.

The update follows the reference implementation's code: ν₀ = 0 and, each step,

    ν ← ν + (1 − β₂)(g² − ν)                (g² = ‖∇L(w)‖² scalar, ∇L(w)^⊙2 diagonal)
    w ← w − η/(√ν̂ + ε) ⊙ ∇L(w),             ν̂ = ν/(1 − β₂ᵗ) with bias correction, else ν

so P = diag(√ν̂ + ε)/η. The process logs the *effective* curvature: the top eigenvalues of
P^{−1/2} H P^{−1/2} at the current point with the preconditioner of the next step (for the scalar
form η H/(√ν̂ + ε)); the edge of stability is an effective sharpness of 2. The eigen tracker runs
on L(P^{−1/2} y) at y = P^{1/2} w, whose Hessian is exactly that matrix, warm-started across steps.

The stable flow ``sf`` and the central flow ``cf`` of both forms integrate (w, ν) in steps τ with
the formulas of ``derive.preconditioned`` (operator programs for scalar RMSProp, per-coordinate
generated kernels for the diagonal form). They start, like the reference implementation, from
the state after one EMA update at w₀ (ν(0) = ν₁, t = 1, so the first step matches), and take
t = 1 + τ as RMSProp's step counter for bias correction (after ``warm_start`` steps, from there). p = √ν̂ + ε and its partial derivatives
come from :func:`RMSProp.denominator` by JAX autodiff: the update rule is written once.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import curvature
from .problem import Problem
from .processes import Process, Settings

__all__ = ["RMSProp", "RMSPropFlowState", "RMSPropMidpointState", "RMSPropState", "rmsprop", "rmsprop_central_flow",
           "rmsprop_midpoint", "rmsprop_stable_flow"]


@dataclass(frozen=True)
class RMSProp:
    """RMSProp's own settings (the learning rate is ``Settings.eta``).

    Attributes:
        beta2: EMA factor of ν, in (0, 1).
        eps: added to √ν̂ (≥ 0).
        bias_correction: divide ν by 1 − β₂ᵗ.
        diagonal: per-coordinate ν (RMSProp); else one scalar ν (scalar RMSProp).
        nu0: initial ν (the reference starts from 0).
        warm_start: RMSProp steps taken before any process starts (as the reference's
            ``--warm-start``): ν₀ = 0 makes the first steps' effective sharpness ≫ 2, which is
            the optimizer's start-up, not its edge of stability. Every process starts from the
            warmed-up (w, ν, t); steps are counted from there.
    """

    beta2: float = 0.99
    eps: float = 0.0
    bias_correction: bool = False
    diagonal: bool = False
    nu0: float = 0.0
    warm_start: int = 0

    @property
    def name(self) -> str:
        return "rmsprop-diag" if self.diagonal else "rmsprop"

    def denominator(self, nu, t):
        """p = √ν̂ + ε, ν̂ = ν/(1 − β₂ᵗ) with bias correction (t the step count, ≥ 1); P = p/η."""
        nu_hat = nu / (1 - self.beta2 ** t) if self.bias_correction else nu
        return jnp.sqrt(nu_hat) + self.eps

    def ema(self, nu, g):
        """ν + (1 − β₂)(g² − ν): g² = ‖g‖² (scalar form) or g^⊙2 (diagonal form)."""
        return nu + (1 - self.beta2) * ((g * g if self.diagonal else jnp.vdot(g, g)) - nu)

    def check(self):
        from derive.errors import DeriveInputError

        if not 0 < self.beta2 < 1:
            raise DeriveInputError(f"beta2: must be in (0, 1), got {self.beta2}")
        if not self.eps >= 0 or not self.nu0 >= 0:
            raise DeriveInputError(f"eps, nu0: must be ≥ 0, got {self.eps}, {self.nu0}")
        if not (isinstance(self.warm_start, int) and self.warm_start >= 0):
            raise DeriveInputError(f"warm_start: must be an integer ≥ 0, got {self.warm_start!r}")

    def update(self, problem, eta, w, nu, t, g=None):
        """One RMSProp step from (w, ν, t): the EMA first, then w − η/(√ν̂ + ε) ⊙ ∇L(w) (``g``: ∇L(w)
        if the caller has it)."""
        g = problem.grad(w) if g is None else g
        nu = self.ema(nu, g)
        t = t + 1
        return w - eta / self.denominator(nu, t) * g, nu, t

    def warmed_up(self, problem, eta, w0):
        """(w, ν, t) after ``warm_start`` steps from (w₀, ν₀, 0); t an int32."""
        w0 = jnp.asarray(w0)
        nu = jnp.full(w0.shape if self.diagonal else (), self.nu0, w0.dtype)
        state = (w0, nu, jnp.asarray(0, jnp.int32))
        if self.warm_start == 0:
            return state
        return jax.lax.fori_loop(0, self.warm_start, lambda i, st: self.update(problem, eta, *st), state)


class RMSPropState(NamedTuple):
    w: jax.Array
    nu: jax.Array          # scalar, or one entry per parameter
    t: jax.Array           # steps taken
    eig: curvature.EigTracker
    g: jax.Array           # ∇L(w): the next step's and the log's, computed once


def rmsprop(problem: Problem, s: Settings, opt: RMSProp = RMSProp()) -> Process:
    """The discrete RMSProp process (scalar or diagonal) on ``problem``."""
    opt.check()
    ema = opt.ema

    def step_size(nu, t):
        return s.eta / opt.denominator(nu, t)

    def effective(eig, w, g, nu, t, first=False):
        """Track the top eigenpairs of P^{−1/2} H P^{−1/2} with P the next step's preconditioner."""
        return _effective_eigs(problem, s, eig, w, step_size(ema(nu, g), t + 1), first,
                               tol=max(s.eig_tol, s.log_eig_tol))

    def init(w0):
        w, nu, t = opt.warmed_up(problem, s.eta, w0)
        g = problem.grad(w)
        return RMSPropState(w, nu, t, effective(None, w, g, nu, t, first=True), g)

    def step(state):
        w, nu, t = opt.update(problem, s.eta, state.w, state.nu, state.t, state.g)
        g = problem.grad(w)
        return RMSPropState(w, nu, t, effective(state.eig, w, g, nu, t), g)

    def observe(state):
        g = state.g
        return {"w": state.w, "loss": problem.loss(state.w), "grad_norm2": jnp.vdot(g, g),
                **_eig_log(state.eig), **_nu_log(state.nu),
                "effective_step": jnp.mean(step_size(state.nu, jnp.maximum(state.t, 1)))}

    return Process(opt.name, init, step, observe)


class RMSPropMidpointState(NamedTuple):
    prev: jax.Array         # w_{t−1}, w_t (``mid`` is w*_{t−1}: it needed w_t)
    cur: jax.Array
    nu: jax.Array           # the optimizer's state (ν, t) after its step to ``cur``
    t: jax.Array
    mid: jax.Array
    eig: curvature.EigTracker
    nu_mid: jax.Array       # ν at ``mid``'s step (logged as the discrete process logs it)


def rmsprop_midpoint(problem: Problem, s: Settings, opt: RMSProp = RMSProp()) -> Process:
    """w*_t = ¼(w_{t−1} + 2w_t + w_{t+1}) of the optimizer's iterates (w_{−1} := w_0), with the effective
    curvature at w*_t in the preconditioner of the step w_t → w_{t+1}."""
    opt.check()

    def advance(cur, nu, t):
        return opt.update(problem, s.eta, cur, nu, t)

    def effective(eig, mid, nu, t, first=False):
        return _effective_eigs(problem, s, eig, mid, s.eta / opt.denominator(nu, t), first,
                               tol=max(s.eig_tol, s.log_eig_tol))

    def init(w0):
        w, nu, t = opt.warmed_up(problem, s.eta, w0)
        nxt, nu1, t1 = advance(w, nu, t)
        mid = (3 * w + nxt) / 4
        return RMSPropMidpointState(w, nxt, nu1, t1, mid, effective(None, mid, nu1, t1, first=True), nu)

    def step(state: RMSPropMidpointState):   # one optimizer step: w_{t+1} completes w*_t
        after, nu2, t2 = advance(state.cur, state.nu, state.t)
        mid = (state.prev + 2 * state.cur + after) / 4
        return RMSPropMidpointState(state.cur, after, nu2, t2, mid, effective(state.eig, mid, nu2, t2), state.nu)

    def observe(state: RMSPropMidpointState):
        loss, g = problem.value_and_grad(state.mid)
        return {"w": state.mid, "loss": loss, "grad_norm2": jnp.vdot(g, g), **_eig_log(state.eig),
                **_nu_log(state.nu_mid)}

    return Process("midpoint", init, step, observe)


def _eig_log(eig) -> dict:
    """The tracker's eigenvalues, whether its last solve converged, and the HVPs it took."""
    return {"eigs": eig.vals, "eig_converged": eig.converged, "eig_matvecs": eig.matvecs}


def _nu_log(nu) -> dict:
    """``nu``: ν, or its mean over coordinates for the diagonal form, whose full vector is ``nu_vector``
    (kept for models up to ``numeric.driver.KEEP_W_LIMIT`` parameters)."""
    return {"nu": jnp.mean(nu)} if jnp.ndim(nu) == 0 else {"nu": jnp.mean(nu), "nu_vector": nu}


def _effective_loss(problem: Problem, d):
    """L(d ⊙ y), whose Hessian at y = w/d is D H D (D = diag(d)), and its dense Hessian if any."""
    loss = lambda y: problem.loss(d * y)   # noqa: E731
    dense = None if problem.hess is None else (lambda y: d[:, None] * problem.hess(d * y) * d[None, :])
    return loss, dense


def _effective_eigs(problem: Problem, s: Settings, eig, w, step, first=False, tol=None, refresh=False):
    """Top eigenpairs of P^{−1/2} H P^{−1/2} (P = 1/step, elementwise): init, full solve or refresh."""
    d = jnp.sqrt(step) * jnp.ones_like(w)
    loss, dense = _effective_loss(problem, d)
    y = w / d
    if first:
        return curvature.tracker_init(loss, y, k0=1, k_max=s.k_max, threshold=s.track * 2.0, dense=dense,
                                      columns=problem.hvp_columns)
    if refresh:
        return curvature.tracker_refresh(eig, loss, y, problem.hvp_columns)
    return curvature.tracker_update(eig, loss, y, threshold=s.track * 2.0, tol=tol or s.eig_tol,
                                    max_iters=s.eig_iters, dense_hess=dense, columns=problem.hvp_columns)


# --------------------------------------------------------------------------- stable and central flows

class RMSPropFlowState(NamedTuple):
    w: jax.Array
    nu: jax.Array
    t: jax.Array            # RMSProp's step count as a float: 1 + τ (+ warm_start)
    eig: curvature.EigTracker
    X: jax.Array            # Σ = U X Uᵀ at the last substep (K×K, zero-padded; P-orthonormal U)
    n_critical: jax.Array
    predicted_loss: jax.Array
    ok: jax.Array = jnp.asarray(True)
    ode_steps: jax.Array = jnp.asarray(0, jnp.int32)


class _Coefficients:
    """The derived formulas of ``derive.preconditioned`` on one problem, for c = 0..K critical directions.

    ``__call__(w, nu, t, vals, vecs, c)`` returns (A, B, w_basis, nu_basis, loss_basis): Q = A + B[X]
    (packed), dw/dτ = w₀ + Σ x w_x, dν/dτ likewise, E[L] − L = Σ x ℓ_x, for the c leading
    effective eigenpairs (vecs: unit eigenvectors of P^{−1/2}HP^{−1/2}).
    """

    def __init__(self, problem: Problem, s: Settings, opt: RMSProp, K: int):
        """K = 0: the stable flow's formulas only."""
        import derive
        from derive import preconditioned as pc

        self.problem, self.s, self.opt, self.K = problem, s, opt, K
        form = pc.diagonal_rmsprop_central_flow if opt.diagonal else pc.rmsprop_central_flow_multi
        self.forms = [form(c) for c in range(1, K + 1)]
        first = self.forms[0] if self.forms else form(1)        # its X = 0 parts are the stable flow
        if opt.diagonal:
            self.vectors = [derive.compile_operator([derive.grad] + [derive.DL(derive.Vec(f"u{i + 1}"), derive.Vec(f"u{j + 1}"))
                                                                      for i, j in _pairs(c)],
                                                     problem.loss, name=f"g and N_ij, k = {c}")
                            for c in range(1, K + 1)]
            self.kernels = [self._kernel(f) for f in self.forms]
            self.stable_kernel = derive.build_function(
                [first.w_basis[0], first.nu_basis[0]], [first.symbols[n] for n in ("grad", "nu", "p")],
                consts=(derive.eta, pc.beta2), name="rmsprop_diag_stable_flow")
        else:
            self.programs = []
            for f in self.forms:
                v0, vb = f.velocity_basis
                n0, nb = f.nu_basis
                self.programs.append(derive.compile_operator(list(f.A) + list(f.B) + [v0, *vb, n0, *nb, *f.loss_basis],
                                                             problem.loss,
                                                             name=f"scalar RMSProp central flow, k = {f.k}"))
            self.stable_program = derive.compile_operator([first.velocity_basis[0], first.nu_basis[0]], problem.loss,
                                                          name="scalar RMSProp stable flow")

    def _kernel(self, f):
        import derive
        from derive import preconditioned as pc

        sym = f.symbols
        names = ["grad", "nu", "p", "p_nu", "p_tau"] + [f"u{i + 1}" for i in range(f.k)] + \
            [f"N{i + 1}{j + 1}" for i, j in _pairs(f.k)]
        outs = [f.A_terms[i, j] for i, j in _pairs(f.k)] + list(f.B_terms) + \
            [f.w_basis[0], *f.w_basis[1], f.nu_basis[0], *f.nu_basis[1], *f.loss_basis]
        fn = derive.build_function(outs, [sym[n] for n in names], consts=(derive.eta, pc.beta2),
                                   name=f"rmsprop_diag_central_flow_k{f.k}")
        return jax.vmap(lambda row, eta, beta2: jnp.stack(fn(row, eta, beta2)), in_axes=(0, None, None))

    def preconditioner(self, nu, t):
        """p, ∂p/∂ν (elementwise) and ∂p/∂t at (ν, t), by JAX autodiff of the update rule.

        Where ν = 0 (a coordinate whose gradient has been exactly 0, e.g. a weight on a constant-zero
        input) √ν has no derivative; such a coordinate's ν stays 0 (ν̇ = c(g² − ν) = 0), so its
        derivatives are set to 0 instead of ∞·0 = NaN.
        """
        p, p_nu = jax.jvp(lambda v: self.opt.denominator(v, t), (nu,), (jnp.ones_like(nu),))
        _, p_tau = jax.jvp(lambda tt: self.opt.denominator(nu, tt), (t,), (jnp.ones_like(t),))
        alive = nu > 0
        return p, jnp.where(alive, p_nu, 0.0), jnp.where(alive, p_tau, 0.0)

    def stable(self, w, nu, t):
        """dw/dτ and dν/dτ of the stable flow (X = 0)."""
        p, _, _ = self.preconditioner(nu, t)
        eta, b2 = self.s.eta, self.opt.beta2
        if self.opt.diagonal:
            g = self.problem.grad(w)
            rows = jnp.stack([g, nu, p], axis=1)
            return tuple(jax.vmap(lambda r: jnp.stack(self.stable_kernel(r, eta, b2)))(rows).T)
        wd, nd = self.stable_program(w, eta=eta, nu=nu, p=p, beta2=b2)
        return wd, nd

    def __call__(self, w, nu, t, vals, vecs, c):
        s, opt = self.s, self.opt
        n_pairs = c * (c + 1) // 2
        p, p_nu, p_tau = self.preconditioner(nu, t)
        if opt.diagonal:
            d = jnp.sqrt(s.eta / p)
            us = {f"u{i + 1}": d * vecs[:, i] for i in range(c)}             # P-orthonormal u = D ũ
            g, *Ns = self.vectors[c - 1](w, **us)
            cols = [g, nu, p, p_nu, p_tau] + [us[f"u{i + 1}"] for i in range(c)] + Ns
            terms = self.kernels[c - 1](jnp.stack([jnp.broadcast_to(x, w.shape) for x in cols], axis=1),
                                        s.eta, opt.beta2)
            total = terms.sum(axis=0)
            A = _unpack(total[:n_pairs], c)
            B = total[n_pairs:n_pairs + n_pairs * n_pairs].reshape(n_pairs, n_pairs)
            rest = terms[:, n_pairs + n_pairs * n_pairs:]
            w_basis = rest[:, :1 + n_pairs].T
            nu_basis = rest[:, 1 + n_pairs:2 * (1 + n_pairs)].T
            loss_basis = total[n_pairs + n_pairs * n_pairs + 2 * (1 + n_pairs):]
            return A, B, w_basis, nu_basis, loss_basis
        inputs = {f"u{i + 1}": vecs[:, i] for i in range(c)}
        out = self.programs[c - 1](w, eta=s.eta, nu=nu, p=p, p_nu=p_nu, p_tau=p_tau, beta2=opt.beta2, **inputs)
        A = jnp.stack(out[:c * c]).reshape(c, c)
        B = jnp.stack(out[c * c:c * c + n_pairs * n_pairs]).reshape(n_pairs, n_pairs)
        rest = out[c * c + n_pairs * n_pairs:]
        w_basis = jnp.stack(rest[:1 + n_pairs])
        nu_basis = jnp.stack(rest[1 + n_pairs:2 * (1 + n_pairs)])
        loss_basis = jnp.stack([jnp.broadcast_to(x, ()) for x in rest[2 * (1 + n_pairs):]])
        return A, B, w_basis, nu_basis, loss_basis


def _pairs(k):
    return [(i, j) for i in range(k) for j in range(i, k)]


def _unpack(packed, k):
    M = jnp.zeros((k, k), packed.dtype)
    for idx, (i, j) in enumerate(_pairs(k)):
        M = M.at[i, j].set(packed[idx]).at[j, i].set(packed[idx])
    return M


def _flow_init(problem: Problem, s: Settings, opt: RMSProp, K: int):
    def init(w0):
        w0, nu0, t0 = opt.warmed_up(problem, s.eta, w0)
        nu = opt.ema(nu0, problem.grad(w0))                # the reference's flows start after one update
        t = (t0 + 1).astype(w0.dtype)
        eig = _effective_eigs(problem, s, None, w0, s.eta / opt.denominator(nu, t), first=True)
        return RMSPropFlowState(w0, nu, t, eig, jnp.zeros((K, K), w0.dtype), jnp.asarray(0, jnp.int32),
                                problem.loss(w0), jnp.asarray(True), jnp.asarray(0, jnp.int32))
    return init


def _flow_observe(problem: Problem, s: Settings, opt: RMSProp):
    def observe(state: RMSPropFlowState):
        loss, g = problem.value_and_grad(state.w)
        step = s.eta / opt.denominator(state.nu, state.t)
        return {"w": state.w, "loss": loss, "grad_norm2": jnp.vdot(g, g), **_eig_log(state.eig), **_nu_log(state.nu),
                "effective_step": jnp.mean(step),
                "solver_ok": state.ok, "ode_steps": state.ode_steps,
                "sigma_trace": jnp.trace(state.X), "sigma_eigs": jnp.linalg.eigvalsh(state.X)[::-1],
                "n_critical": state.n_critical, "predicted_loss": state.predicted_loss}
    return observe


def rmsprop_stable_flow(problem: Problem, s: Settings, opt: RMSProp = RMSProp()) -> Process:
    """RMSProp's stable flow dw/dτ = −P⁻¹∇L, dν/dτ = ((1−β₂)/β₂)(g² − ν) (diffrax Tsit5, PID control)."""
    import diffrax

    opt.check()
    coef = _Coefficients(problem, s, opt, 0)
    term = diffrax.ODETerm(lambda t, y, args: coef.stable(y[0], y[1], t))
    controller = diffrax.PIDController(rtol=s.rtol, atol=s.atol)

    def step(state: RMSPropFlowState):
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), t0=state.t, t1=state.t + 1.0, dt0=0.1, y0=(state.w, state.nu),
                                  stepsize_controller=controller, max_steps=4096, throw=False)
        w, nu = sol.ys[0][-1], sol.ys[1][-1]
        t = state.t + 1.0
        eig = _effective_eigs(problem, s, state.eig, w, s.eta / opt.denominator(nu, t), tol=max(s.eig_tol, s.log_eig_tol))
        ok = state.ok & (sol.result == diffrax.RESULTS.successful)
        return state._replace(w=w, nu=nu, t=t, eig=eig, ok=ok, predicted_loss=problem.loss(w),
                              ode_steps=jnp.asarray(sol.stats["num_accepted_steps"], jnp.int32))

    return Process("sf", _flow_init(problem, s, opt, min(s.k_max, problem.n)), step, _flow_observe(problem, s, opt))


def rmsprop_central_flow(problem: Problem, s: Settings, opt: RMSProp = RMSProp()) -> Process:
    """RMSProp's central flow: explicit Euler substeps on (w, ν); Σ from the SDCP in the P-metric.

    As for GD, the SDCP is linearized to the next substep: Uᵀ(2P − H)U = 2I − Λ (Λ the critical
    effective eigenvalues) becomes (2I − Λ) + dτ·(A + B[X]) ⪰ 0, so the solver is given
    A + (2I − Λ)/dτ, which pins the effective sharpness at 2. Nothing critical: a stable-flow substep.
    """
    from . import sdcp

    opt.check()
    K, dt = min(s.k_max, problem.n), 1.0 / s.cf_substeps
    coef = _Coefficients(problem, s, opt, K)
    critical = s.critical * 2.0

    def stable_branch(w, nu, t, vals, vecs):
        wd, nd = coef.stable(w, nu, t)
        return jnp.zeros((K, K), w.dtype), wd, nd, jnp.zeros((), w.dtype)

    def branch(w, nu, t, vals, vecs, c):
        A, B, w_basis, nu_basis, loss_basis = coef(w, nu, t, vals, vecs, c)
        A = A + jnp.diag(2.0 - vals[:c]) / dt
        if c == 1:
            X = sdcp.sigma2_closed_form(A[0, 0], B[0, 0]).reshape(1, 1)
        else:
            X, _ = sdcp.solve_sdcp(A, B, tol=s.sdcp_tol, max_iters=s.sdcp_iters)
        x = jnp.stack([X[i, j] for i, j in _pairs(c)])
        wd = w_basis[0] + x @ w_basis[1:]
        nd = nu_basis[0] + x @ nu_basis[1:]
        return jnp.zeros((K, K), w.dtype).at[:c, :c].set(X), wd, nd, x @ loss_basis

    branches = [stable_branch] + [functools.partial(branch, c=c) for c in range(1, K + 1)]

    def substep(carry, i):
        w, nu, t, eig = carry
        step = s.eta / opt.denominator(nu, t)
        eig = jax.lax.cond(i == 0, lambda e: e,
                           lambda e: _effective_eigs(problem, s, e, w, step, refresh=True), eig)
        valid = jnp.arange(K) < eig.k
        n_crit = jnp.sum(valid & (eig.vals >= critical)).astype(jnp.int32)
        X, wd, nd, dloss = jax.lax.switch(n_crit, branches, w, nu, t, jnp.nan_to_num(eig.vals), eig.vecs)
        return (w + dt * wd, nu + dt * nd, t + dt, eig), (X, n_crit, problem.loss(w) + dloss)

    def step(state: RMSPropFlowState):
        (w, nu, t, eig), (Xs, ncs, pred) = jax.lax.scan(substep, (state.w, state.nu, state.t, state.eig),
                                                        jnp.arange(s.cf_substeps))
        eig = _effective_eigs(problem, s, eig, w, s.eta / opt.denominator(nu, t))
        return state._replace(w=w, nu=nu, t=t, eig=eig, X=Xs[-1], n_critical=ncs[-1], predicted_loss=pred[-1])

    return Process("cf", _flow_init(problem, s, opt, K), step, _flow_observe(problem, s, opt))
