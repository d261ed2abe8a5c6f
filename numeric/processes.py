"""The dynamics compared by gdflows, each a pair of pure functions ``init(w0)`` / ``step(state)``.

Time is counted in GD steps (τ = k after k steps, as in the central-flows paper): every process
advances τ by one per ``step``, so step k of every process is compared with GD's k-th iterate.
In these units gradient flow is dw/dτ = −η∇L, the modified flow dw/dτ = η f̃(w) with f̃ from
``derive.modified_vector_field`` (time t = ητ), and the central flow
dw/dτ = −η[∇L + ½∇⟨Σ, H⟩] with Σ = U X Uᵀ from the SDCP of ``derive.central_flow_multi``.

Formulas come from ``derive``: generated code for symbolic problems, operator programs
(grad / jvp-of-grad) otherwise. This module only integrates them.

References: Cohen et al., "Understanding Optimization in Deep Learning with Central Flows"
(ICLR 2025), eq. (5)–(8) and App. C (discretization: explicit Euler, 4 substeps per step).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from . import curvature, sdcp
from .problem import Problem

__all__ = ["Process", "Settings", "gd", "gradient_flow", "modified_flow", "central_flow", "midpoint",
           "make_process", "PROCESS_NAMES", "discrete_name", "process_names"]

PROCESS_NAMES = ("gd", "gf", "mf", "cf", "midpoint")


@dataclass(frozen=True)
class Settings:
    """Numerical settings shared by the processes (all documented in the CLI help).

    Attributes:
        eta: learning rate η: :func:`numeric.driver.run` sets it from its one learning-rate argument
            (settings made for a run leave it out); processes built directly need it.
        rtol, atol: diffrax error control for gradient and modified flows (per unit of τ).
        mf_order: order of the modified flow (1 = gradient flow on L + (η/4)‖∇L‖²).
        cf_substeps: explicit Euler substeps per unit τ of the central flow.
        critical: eigenvalues ≥ critical·2/η are critical for the central flow (0.975 → 1.95/η).
        track: eigenvalues ≥ track·2/η are tracked by the eigensolver (0.75 → 1.5/η).
        k_max: capacity of the eigen tracker (largest number of tracked eigenvalues).
        eig_tol, eig_iters: LOBPCG relative tolerance and iteration cap.
        sdcp_tol, sdcp_iters: SDCP solver tolerance and iteration cap.
        cf_drift: the central flow's stable part: ``"loss"`` (−η∇L, the paper's) or ``"modified"``
            (−η∇ of the order-1 modified loss L + (η/4)‖∇L‖²).
        eig_every: gd, gf, mf and midpoint solve for eigenpairs every this many steps (their
            ``eigs`` rows in between are NaN); the central flow needs them at every step.
        log_eig_tol: LOBPCG tolerance for those processes, which only log eigenpairs (a relative
            residual r gives eigenvalues to about r²·S/gap); the central flow uses ``eig_tol``.
    """

    eta: float | None = None
    rtol: float = 1e-8
    atol: float = 1e-10
    mf_order: int = 1
    cf_substeps: int = 4
    critical: float = 0.975
    track: float = 0.75
    k_max: int = 4
    eig_tol: float = 1e-6
    eig_iters: int = 100
    sdcp_tol: float = 1e-9
    sdcp_iters: int = 2000
    eig_every: int = 1
    log_eig_tol: float = 1e-3
    cf_drift: str = "loss"

    @property
    def crit_value(self) -> float:
        return self.critical * 2.0 / self.eta

    @property
    def track_value(self) -> float:
        return self.track * 2.0 / self.eta


class Process(NamedTuple):
    """A named dynamics: ``init(w0) -> state``, ``step(state) -> state`` (one unit of τ), and
    ``observe(state) -> log`` (a dict of arrays: at least ``w``, ``loss``, ``grad_norm2``, ``eigs``)."""

    name: str
    init: Callable[[Any], Any]
    step: Callable[[Any], Any]
    observe: Callable[[Any], dict]


class FlowState(NamedTuple):
    w: jax.Array
    eig: curvature.EigTracker
    ok: jax.Array = jnp.asarray(True)   # the ODE solver succeeded so far
    t: jax.Array = jnp.asarray(0, jnp.int32)   # steps taken
    ode_steps: jax.Array = jnp.asarray(0, jnp.int32)   # accepted ODE solver steps in the last unit of τ
    loss_grad: Any = None   # GD: (L(w), ∇L(w)), computed once per step for the next step and the log


# --------------------------------------------------------------------------- helpers

def _eig_init(problem: Problem, w, s: Settings):
    return curvature.tracker_init(problem.loss, w, k0=1, k_max=s.k_max, threshold=s.track_value,
                                  dense=problem.hess, columns=problem.hvp_columns)


def _eig_update(problem: Problem, eig, w, s: Settings, tol=None):
    return curvature.tracker_update(eig, problem.loss, w, threshold=s.track_value, tol=tol or s.eig_tol,
                                    max_iters=s.eig_iters, dense_hess=problem.hess, columns=problem.hvp_columns)


def _eig_update_every(problem: Problem, eig, w, s: Settings, t):
    """The full solve at steps t ≡ 0 (mod ``eig_every``); the stale tracker otherwise."""
    tol = max(s.eig_tol, s.log_eig_tol)
    if s.eig_every == 1:
        return _eig_update(problem, eig, w, s, tol)
    return jax.lax.cond(t % s.eig_every == 0, lambda e: _eig_update(problem, e, w, s, tol), lambda e: e, eig)


def _basic_log(problem: Problem, w, eig, fresh=True, loss_grad=None) -> dict:
    loss, g = problem.value_and_grad(w) if loss_grad is None else loss_grad
    return {"w": w, "loss": loss, "grad_norm2": jnp.vdot(g, g),
            "eigs": jnp.where(fresh, eig.vals, jnp.nan), "eig_converged": eig.converged | ~fresh,
            "eig_matvecs": jnp.where(fresh, eig.matvecs, 0)}


def _flow_step(problem: Problem, rhs: Callable, s: Settings):
    """One unit of τ of dw/dτ = rhs(w) with diffrax (adaptive, error-controlled)."""
    import diffrax

    term = diffrax.ODETerm(lambda t, w, args: rhs(w))
    solver = diffrax.Tsit5()
    controller = diffrax.PIDController(rtol=s.rtol, atol=s.atol)

    def step(state: FlowState):
        sol = diffrax.diffeqsolve(term, solver, t0=0.0, t1=1.0, dt0=0.1, y0=state.w,
                                  stepsize_controller=controller, max_steps=4096, throw=False)
        w = sol.ys[-1]
        ok = state.ok & (sol.result == diffrax.RESULTS.successful)
        return FlowState(w, _eig_update_every(problem, state.eig, w, s, state.t + 1), ok, state.t + 1,
                         jnp.asarray(sol.stats["num_accepted_steps"], jnp.int32))

    return step


def _flow_observe(problem: Problem, s: Settings):
    def observe(state: FlowState):
        log = _basic_log(problem, state.w, state.eig, state.t % s.eig_every == 0, state.loss_grad)
        log["solver_ok"] = state.ok
        log["ode_steps"] = state.ode_steps
        return log
    return observe


def _flow_init(problem: Problem, s: Settings):
    def init(w0):
        w0 = jnp.asarray(w0)
        zero = jnp.asarray(0, jnp.int32)
        return FlowState(w0, _eig_init(problem, w0, s), jnp.asarray(True), zero, zero)
    return init


# --------------------------------------------------------------------------- processes

def gd(problem: Problem, s: Settings) -> Process:
    """Gradient descent w ← w − η∇L: one value-and-gradient per step, carried to the next step and the log."""
    flow_init = _flow_init(problem, s)

    def init(w0):
        state = flow_init(w0)
        return state._replace(loss_grad=problem.value_and_grad(state.w))

    def step(state: FlowState):
        w = state.w - s.eta * state.loss_grad[1]
        return FlowState(w, _eig_update_every(problem, state.eig, w, s, state.t + 1), state.ok, state.t + 1,
                         state.ode_steps, problem.value_and_grad(w))
    return Process("gd", init, step, _flow_observe(problem, s))


def gradient_flow(problem: Problem, s: Settings) -> Process:
    """Gradient flow dw/dτ = −η∇L (diffrax Tsit5, PID error control)."""
    return Process("gf", _flow_init(problem, s), _flow_step(problem, lambda w: -s.eta * problem.grad(w), s),
                   _flow_observe(problem, s))


def modified_field_rhs(problem: Problem, s: Settings) -> Callable:
    """dw/dτ = η f̃(w), f̃ the order-``mf_order`` modified field derived by ``derive``.

    Symbolic problems: −∇ of the modified loss where one exists (else the field), instantiated
    on the SymPy loss and compiled by ``derive.build_function``. Autodiff problems: the field's
    operator program (grad and jvps of grad).
    """
    import derive

    if problem.sympy is not None:
        loss, params, _ = problem.sympy
        try:
            if all(derive.gradient_orders(s.mf_order).values()):
                (g,) = derive.derivatives(derive.modified_loss(s.mf_order).on(loss, params), params, order=1)
                field = -g
            else:
                field = derive.modified_vector_field(s.mf_order).on(loss, params)
        except derive.DeriveInputError as err:   # e.g. a non-smooth loss: say which process needs what
            raise derive.DeriveInputError(f"flows: the modified flow (mf) cannot run: {err}; "
                                          "leave mf out of --flows") from None
        fn = _generated_field(field, params, s.mf_order)   # η stays an argument: one kernel for all η
        return lambda w: s.eta * fn(w, eta=s.eta)
    prog = derive.modified_vector_field(s.mf_order).compile(problem.loss)
    return lambda w: s.eta * prog(w, eta=s.eta)


_FIELD_CACHE: dict = {}


def _generated_field(field, params, order):
    import derive

    key = (tuple(field), tuple(params))
    if key not in _FIELD_CACHE:
        _FIELD_CACHE[key] = derive.build_function(field, params, consts=(derive.eta,),
                                                  name=f"modified_field_order{order}")
    return _FIELD_CACHE[key]


def modified_flow(problem: Problem, s: Settings) -> Process:
    """Modified flow: gradient flow on the modified loss (or the modified field at higher order)."""
    return Process("mf", _flow_init(problem, s), _flow_step(problem, modified_field_rhs(problem, s), s),
                   _flow_observe(problem, s))


class MidpointState(NamedTuple):
    prev: jax.Array
    cur: jax.Array
    mid: jax.Array
    eig: curvature.EigTracker
    t: jax.Array


def midpoint(problem: Problem, s: Settings) -> Process:
    """w*_t = ¼(w_{t−1} + 2w_t + w_{t+1}) of GD (w_{−1} := w_0), which removes period-2 oscillation."""
    def gd_step(w):
        return w - s.eta * problem.grad(w)

    def init(w0):
        w0 = jnp.asarray(w0)
        w1 = gd_step(w0)
        mid = (w0 + 2 * w0 + w1) / 4
        return MidpointState(w0, w1, mid, _eig_init(problem, mid, s), jnp.asarray(0, jnp.int32))

    def step(state: MidpointState):
        nxt = gd_step(state.cur)
        mid = (state.prev + 2 * state.cur + nxt) / 4
        t = state.t + 1
        return MidpointState(state.cur, nxt, mid, _eig_update_every(problem, state.eig, mid, s, t), t)

    def observe(state: MidpointState):
        return _basic_log(problem, state.mid, state.eig, state.t % s.eig_every == 0)

    return Process("midpoint", init, step, observe)


# --------------------------------------------------------------------------- central flow

class CentralState(NamedTuple):
    w: jax.Array
    eig: curvature.EigTracker
    X: jax.Array            # Σ = U X Uᵀ at the last substep (K×K, zero-padded)
    n_critical: jax.Array


def _central_programs(problem: Problem, s: Settings, K: int):
    """For c = 1..K critical directions: (A, B, v0, basis) from derive, as one program each."""
    import derive

    progs = []
    for c in range(1, K + 1):
        m = derive.central_flow_multi(c, drift=getattr(s, "cf_drift", "loss"))
        v0, basis = m.velocity_basis
        progs.append(derive.compile_operator(list(m.A) + list(m.B) + [v0, *basis], problem.loss,
                                             name=f"central flow, k = {c}"))
    predicted = derive.central_flow()
    pred_loss = derive.compile_operator(predicted.predicted_loss.expr, problem.loss, name="predicted loss")
    pred_grad = derive.compile_operator(predicted.predicted_grad_norm2.expr, problem.loss, name="predicted ‖∇L‖²")
    return progs, pred_loss, pred_grad


def central_flow(problem: Problem, s: Settings) -> Process:
    """Central flow: Euler substeps; at each, Σ over the critical eigenspace from the SDCP.

    The SDCP is linearized to the next substep: with Λ = diag(critical eigenvalues),
    2/η·I − UᵀHU after a substep dτ is ≈ (2/η·I − Λ) + dτ·(A + B[X]), so the solver is given
    A + (2/η·I − Λ)/dτ. This pins critical eigenvalues at 2/η. Nothing critical: a gradient
    flow substep.
    """
    import derive

    K, dt = min(s.k_max, problem.n), 1.0 / s.cf_substeps   # the tracker's capacity
    progs, pred_loss, pred_grad = _central_programs(problem, s, K)
    v0 = derive.central_flow_multi(1, drift=s.cf_drift).velocity_basis[0]      # −η∇L, or −η∇L̃
    stable = derive.compile_operator(v0, problem.loss, name="central flow, nothing critical")

    def sigma_velocity(w, vals, vecs, c):
        """Branch for exactly c critical directions: X (K×K, zero-padded) and dw/dτ."""
        prog = progs[c - 1]
        inputs = {f"u{i + 1}": vecs[:, i] for i in range(c)}
        out = prog(w, eta=s.eta, **inputs)
        p = c * (c + 1) // 2
        A = jnp.stack(out[:c * c]).reshape(c, c)
        B = jnp.stack(out[c * c:c * c + p * p]).reshape(p, p)
        v0, basis = out[c * c + p * p], out[c * c + p * p + 1:]
        A = A + jnp.diag(2.0 / s.eta - vals[:c]) / dt
        if c == 1:
            x = sdcp.sigma2_closed_form(A[0, 0], B[0, 0])
            X = x.reshape(1, 1)
        else:
            X, _ = sdcp.solve_sdcp(A, B, tol=s.sdcp_tol, max_iters=s.sdcp_iters)
        iu = [(i, j) for i in range(c) for j in range(i, c)]
        vel = v0 + sum(X[i, j] * b for (i, j), b in zip(iu, basis))
        return jnp.zeros((K, K), w.dtype).at[:c, :c].set(X), vel

    def gf_branch(w, vals, vecs):   # −η∇L, or −η∇L̃ with the modified drift
        return jnp.zeros((K, K), w.dtype), stable(w, eta=s.eta)

    branches = [gf_branch] + [functools.partial(sigma_velocity, c=c) for c in range(1, K + 1)]

    def substep(carry, i):
        w, eig = carry
        # substep 0 starts from the full solve made at the end of the previous step (same w);
        # later substeps pay only a Rayleigh–Ritz refresh on those vectors.
        eig = jax.lax.cond(i == 0, lambda e: e, lambda e: curvature.tracker_refresh(e, problem.loss, w, problem.hvp_columns), eig)
        valid = jnp.arange(K) < eig.k
        n_crit = jnp.sum(valid & (eig.vals >= s.crit_value)).astype(jnp.int32)
        X, vel = jax.lax.switch(n_crit, branches, w, jnp.nan_to_num(eig.vals), eig.vecs)
        return (w + dt * vel, eig), (X, n_crit)

    def init(w0):
        w0 = jnp.asarray(w0)
        return CentralState(w0, _eig_init(problem, w0, s), jnp.zeros((K, K), w0.dtype), jnp.asarray(0, jnp.int32))

    def step(state: CentralState):
        (w, eig), (Xs, ncs) = jax.lax.scan(substep, (state.w, state.eig), jnp.arange(s.cf_substeps))
        return CentralState(w, _eig_update(problem, eig, w, s), Xs[-1], ncs[-1])

    def observe(state: CentralState):
        trace = jnp.trace(state.X)
        log = _basic_log(problem, state.w, state.eig)
        log.update(sigma_eigs=jnp.linalg.eigvalsh(state.X)[::-1], sigma_diag=jnp.diag(state.X), sigma_trace=trace,
                   n_critical=state.n_critical,
                   predicted_loss=pred_loss(state.w, eta=s.eta, sigma2=trace),
                   predicted_grad_norm2=pred_grad(state.w, eta=s.eta, sigma2=trace))
        return log

    return Process("cf", init, step, observe)


_BUILDERS = {"gd": gd, "gf": gradient_flow, "mf": modified_flow, "cf": central_flow, "midpoint": midpoint}


def process_names(optimizer=None) -> tuple:
    """The processes available with ``optimizer`` (None: GD): the discrete one first."""
    if optimizer is None:
        return PROCESS_NAMES
    return (optimizer.name, "sf", "cf", "midpoint")


def discrete_name(optimizer=None) -> str:
    """The discrete process of a run: ``gd``, ``rmsprop`` or ``rmsprop-diag``."""
    return "gd" if optimizer is None else optimizer.name


def make_process(name: str, problem: Problem, s: Settings, optimizer=None) -> Process:
    """The process called ``name`` (one of :func:`process_names`) on ``problem``.

    ``optimizer``: None for GD, or a :class:`numeric.adaptive.RMSProp` (its discrete process, its
    stable flow ``sf`` and its central flow ``cf``).
    """
    from derive.errors import DeriveInputError

    names = process_names(optimizer)
    if name not in names:
        raise DeriveInputError(f"flows: unknown process {name!r}; expected some of {list(names)}")
    if s.eta is None:
        raise DeriveInputError("settings: eta is unset; numeric.run sets it from its learning rate, "
                               "a process built directly needs Settings(eta=…)")
    if optimizer is None:
        return _BUILDERS[name](problem, s)
    from . import adaptive

    builders = {optimizer.name: adaptive.rmsprop, "sf": adaptive.rmsprop_stable_flow, "cf": adaptive.rmsprop_central_flow,
                "midpoint": adaptive.rmsprop_midpoint}
    return builders[name](problem, s, optimizer)
