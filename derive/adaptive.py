"""Central flows of adaptive optimizers, first scalar RMSProp (one unstable eigenvalue).

Scalar RMSProp is preconditioned GD w ← w − P⁻¹∇L with P = √ν/η and an EMA state
ν ← β₂ν + (1−β₂)‖∇L‖². Its effective sharpness is S_eff = ηS/√ν (the largest eigenvalue of
P⁻¹H); the edge of stability is S_eff = 2. In steps τ, the central-flow ansatz is

    dw/dτ = −(η/√ν)[∇L + ½σ²∇S],   dν/dτ = c(‖∇L‖² + σ²S² − ν),   c = (1 − β₂)/β₂,

where ‖∇L‖² + σ²S² is the time average of ‖∇L‖² over the oscillation w + x u (E x² = σ²) and the
factor 1/β₂ reads the EMA as a step of an ODE in the next iterate, as the reference code does.
σ² is whatever keeps the effective sharpness at 2: dS_eff/dτ = 0 with dS/dτ = ⟨∇S, dw/dτ⟩.
SymPy solves that linear equation here; nothing below is typed in.

k eigenvalues in the preconditioner's metric, and the diagonal form, are in
:mod:`derive.preconditioned`; ``numeric.adaptive`` runs them.

References: Cohen et al., "Understanding Optimization in Deep Learning with Central Flows"
(ICLR 2025), §5 (RMSProp) and the reference implementation's update rules.
"""
from __future__ import annotations

import sympy as sp

from .central import N, _dot_subs, _random_vectors, central_flow, g, sigma2
from .ops import Dot, inner, opstr, split_vector_terms
from .ops import eta as ETA
from .result import Check, Derivation
from .taylor import S

__all__ = ["ScalarRMSPropCentralFlow", "beta2", "nu", "rmsprop_central_flow"]

# Dummies: never equal to a user's symbol named nu or beta2
nu = sp.Dummy("nu", positive=True)
beta2 = sp.Dummy("beta2", positive=True)


class ScalarRMSPropCentralFlow(Derivation):
    """The scalar-RMSProp central flow with one unstable eigenvalue.

    Attributes:
        sigma2_value: σ² solving dS_eff/dτ = 0 at S_eff = 2 (a scalar in ⟨∇L, ∇S⟩, ‖∇S‖², ‖∇L‖², ν, β₂, η).
        expr: dw/dτ with that σ² (the vector formula; also ``velocity``).
        nu_velocity: dν/dτ with that σ², at S = 2√ν/η.
        effective_sharpness: ηS/√ν.
    """

    def __init__(self):
        c = (1 - beta2) / beta2
        self.w_ansatz = -ETA / sp.sqrt(nu) * (g + sigma2 / 2 * N)
        self.nu_ansatz = c * (Dot(g, g) + sigma2 * S**2 - nu)
        self.effective_sharpness = ETA * S / sp.sqrt(nu)
        dS = inner(N, self.w_ansatz)
        self.dSeff_dt = (sp.diff(self.effective_sharpness, S) * dS
                         + sp.diff(self.effective_sharpness, nu) * self.nu_ansatz)
        edge = {S: 2 * sp.sqrt(nu) / ETA}                     # S_eff = 2
        (sol,) = sp.solve(sp.Eq(self.dSeff_dt.xreplace(edge), 0), sigma2)
        self.sigma2_value = sp.factor(sol)
        self.expr = self.velocity = sp.expand(self.w_ansatz.xreplace({sigma2: self.sigma2_value}))
        self.nu_velocity = sp.factor(self.nu_ansatz.xreplace(edge).xreplace({sigma2: self.sigma2_value}))
        self.title = "central flow of scalar RMSProp, one unstable eigenvalue"
        self.lhs, self.lhs_latex = "dw/dτ", r"\frac{dw}{d\tau}"

    def __str__(self):
        return (f"{self.lhs} = −(η/√ν)[g + ½σ²∇S], dν/dτ = ((1−β₂)/β₂)(‖g‖² + σ²S² − ν) with "
                f"σ² = {opstr(self.sigma2_value)} (clipped at 0), S = 2√ν/η")

    def _checks(self, seed):
        edge = {S: 2 * sp.sqrt(nu) / ETA}
        stationary = sp.simplify(self.dSeff_dt.xreplace(edge).xreplace({sigma2: self.sigma2_value}))
        yield Check("σ² keeps the effective sharpness at 2: dS_eff/dτ = 0 (operator identity)",
                    stationary == 0, f"σ² = {opstr(self.sigma2_value)}")
        gd = central_flow()
        frozen = self.sigma2_value.xreplace({beta2: 1})
        step = ETA / sp.sqrt(nu)
        gd_velocity = gd.expr.xreplace({ETA: step})
        same_sigma = sp.simplify(frozen - gd.sigma2_value) == 0
        same_flow = sp.expand(self.expr.xreplace({beta2: 1}) - gd_velocity) == 0
        yield Check("β₂ = 1 (ν frozen): σ² and dw/dτ are GD's central flow at step size η/√ν",
                    same_sigma and same_flow, f"σ² = {opstr(frozen)}")
        gv, Nv = _random_vectors(seed, 5, 2)
        vals = {**_dot_subs({g: gv, N: Nv}), ETA: sp.Rational(1, 7), nu: sp.Rational(9, 4), beta2: sp.Rational(9, 10)}
        s2 = self.sigma2_value.xreplace(vals)
        w_dot = self.w_ansatz.xreplace({sigma2: s2}).xreplace(vals)
        w_dot = sp.Matrix([sum((coef * (gv if vec == g else Nv)[i] for coef, vec in split_vector_terms(w_dot)), 0)
                           for i in range(5)])
        dS = (Nv.T * w_dot)[0, 0]
        S_edge = 2 * sp.sqrt(vals[nu]) / vals[ETA]
        nu_dot = self.nu_ansatz.xreplace({sigma2: s2, S: S_edge}).xreplace(vals)
        dSeff = vals[ETA] * (dS / sp.sqrt(vals[nu]) - S_edge * nu_dot / (2 * vals[nu] ** sp.Rational(3, 2)))
        yield Check("explicit random rational vectors in R⁵, η = 1/7, ν = 9/4, β₂ = 9/10: dS_eff/dτ = 0",
                    sp.simplify(dSeff) == 0, f"σ² = {s2}")


def rmsprop_central_flow() -> ScalarRMSPropCentralFlow:
    """The scalar-RMSProp central flow (one unstable eigenvalue); see the module docstring."""
    return ScalarRMSPropCentralFlow()
