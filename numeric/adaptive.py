"""Adaptive optimizers as preconditioned GD w ← w − P⁻¹∇L: scalar and diagonal RMSProp.

The update follows the reference implementation's code: ν₀ = 0 and, each step,

    ν ← ν + (1 − β₂)(g² − ν)                (g² = ‖∇L(w)‖² scalar, ∇L(w)^⊙2 diagonal)
    w ← w − η/(√ν̂ + ε) ⊙ ∇L(w),             ν̂ = ν/(1 − β₂ᵗ) with bias correction, else ν

so P = diag(√ν̂ + ε)/η. The process logs the *effective* curvature: the top eigenvalues of
P^{−1/2} H P^{−1/2} at the current point with the preconditioner of the next step (for the scalar
form η H/(√ν̂ + ε)); the edge of stability is an effective sharpness of 2. The eigen tracker runs
on L(P^{−1/2} y) at y = P^{1/2} w, whose Hessian is exactly that matrix, warm-started across steps.

Not yet wired into ``gdflows run``/``compare`` (issue 10); the stable and central flows come next.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import curvature
from .problem import Problem
from .processes import Process, Settings

__all__ = ["RMSProp", "RMSPropState", "rmsprop"]


@dataclass(frozen=True)
class RMSProp:
    """RMSProp's own settings (the learning rate is ``Settings.eta``).

    Attributes:
        beta2: EMA factor of ν, in (0, 1).
        eps: added to √ν̂ (≥ 0).
        bias_correction: divide ν by 1 − β₂ᵗ.
        diagonal: per-coordinate ν (RMSProp); else one scalar ν (scalar RMSProp).
        nu0: initial ν (the reference starts from 0).
    """

    beta2: float = 0.99
    eps: float = 0.0
    bias_correction: bool = False
    diagonal: bool = False
    nu0: float = 0.0

    @property
    def name(self) -> str:
        return "rmsprop-diag" if self.diagonal else "rmsprop"


class RMSPropState(NamedTuple):
    w: jax.Array
    nu: jax.Array          # scalar, or one entry per parameter
    t: jax.Array           # steps taken
    eig: curvature.EigTracker


def rmsprop(problem: Problem, s: Settings, opt: RMSProp = RMSProp()) -> Process:
    """The discrete RMSProp process (scalar or diagonal) on ``problem``."""
    from derive.errors import DeriveInputError

    if not 0 < opt.beta2 < 1:
        raise DeriveInputError(f"beta2: must be in (0, 1), got {opt.beta2}")
    if not opt.eps >= 0 or not opt.nu0 >= 0:
        raise DeriveInputError(f"eps, nu0: must be ≥ 0, got {opt.eps}, {opt.nu0}")

    def ema(nu, g):
        return nu + (1 - opt.beta2) * ((g * g if opt.diagonal else jnp.vdot(g, g)) - nu)

    def step_size(nu, t):
        nu_hat = nu / (1 - opt.beta2 ** t) if opt.bias_correction else nu
        return s.eta / (jnp.sqrt(nu_hat) + opt.eps)

    def effective(eig, w, nu, t, first=False):
        """Track the top eigenpairs of P^{−1/2} H P^{−1/2} with P the next step's preconditioner."""
        d = jnp.sqrt(step_size(ema(nu, problem.grad(w)), t + 1)) * jnp.ones_like(w)
        loss = lambda y: problem.loss(d * y)   # noqa: E731  Hessian D H D at y = w / d
        dense = None if problem.hess is None else (lambda y: d[:, None] * problem.hess(d * y) * d[None, :])
        y = w / d
        threshold = s.track * 2.0
        if first:
            return curvature.tracker_init(loss, y, k0=1, k_max=s.k_max, threshold=threshold, dense=dense)
        return curvature.tracker_update(eig, loss, y, threshold=threshold, tol=max(s.eig_tol, s.log_eig_tol),
                                        max_iters=s.eig_iters, dense_hess=dense)

    def init(w0):
        w0 = jnp.asarray(w0)
        nu = jnp.full(w0.shape if opt.diagonal else (), opt.nu0, w0.dtype)
        t = jnp.asarray(0, jnp.int32)
        return RMSPropState(w0, nu, t, effective(None, w0, nu, t, first=True))

    def step(state):
        g = problem.grad(state.w)
        nu = ema(state.nu, g)
        t = state.t + 1
        w = state.w - step_size(nu, t) * g
        return RMSPropState(w, nu, t, effective(state.eig, w, nu, t))

    def observe(state):
        g = problem.grad(state.w)
        return {"w": state.w, "loss": problem.loss(state.w), "grad_norm2": jnp.vdot(g, g),
                "eigs": state.eig.vals, "eig_converged": state.eig.converged,
                "nu": jnp.mean(state.nu), "effective_step": jnp.mean(step_size(state.nu, jnp.maximum(state.t, 1)))}

    return Process(opt.name, init, step, observe)
