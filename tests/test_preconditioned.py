"""RMSProp's central flows with k eigenvalues in the P-metric (derive/preconditioned.py): every check
passes, planted errors fail the checks meant to catch them, and the diagonal flow's fixed point on the
normal-form model solved here from its conditions written by hand."""
import pytest
import sympy as sp

from derive import eta
from derive.adaptive import beta2
from derive.preconditioned import (diagonal_rmsprop_central_flow, p, p_nu, p_tau,
                                   rmsprop_central_flow_multi)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_every_check_passes(k):
    for form in (diagonal_rmsprop_central_flow(k), rmsprop_central_flow_multi(k)):
        checks = form.verify(seed=k)
        assert len(checks) >= 2 and all(c.passed for c in checks), [str(c) for c in checks]


def test_diagonal_without_the_preconditioner_term_fails_the_pencil_check():
    """Dropping 2uᵢu_j ṗ/η (the preconditioner's motion) breaks dλ/dτ of det(H − λP) = 0."""
    f = diagonal_rmsprop_central_flow(1)
    f.q = sp.Matrix([[sp.expand(-f.N[0][0] * f.w_velocity)]])
    names = {c.name: c.passed for c in f.verify(seed=2)}
    pencil = [n for n in names if "pencil" in n]
    assert pencil and not names[pencil[0]]


def test_diagonal_with_a_wrong_velocity_fails_the_projection_check():
    """½ΣX_ijN_ij → ΣX_ijN_ij in dw/dτ: no longer the P-metric projection of ∇L."""
    f = diagonal_rmsprop_central_flow(1)
    f.w_velocity = sp.expand(-eta / p * (f.grad + f.X[0, 0] * f.N[0][0]))
    names = {c.name: c.passed for c in f.verify(seed=3)}
    proj = [n for n in names if "projection" in n]
    assert proj and not names[proj[0]]


def test_diagonal_with_a_wrong_average_fails_the_gram_check():
    """(Hu)(Hu) = 4(p/η)²u² at the edge; a wrong factor 2 breaks ⟨X, B[X]⟩ = a sum of squares."""
    f = diagonal_rmsprop_central_flow(2)
    c = (1 - beta2) / beta2
    wrong_nu = f.nu_velocity + c * 2 * (p / eta) ** 2 * f.X[0, 0] * f.U[0] ** 2
    p_dot = (p_nu * wrong_nu + p_tau) / eta
    f.q = sp.Matrix(2, 2, lambda i, j: sp.expand(2 * f.U[i] * f.U[j] * p_dot - f.N[i][j] * f.w_velocity))
    names = {c.name: c.passed for c in f.verify(seed=2)}
    gram = [n for n in names if "B ⪰ 0" in n]
    assert gram and not names[gram[0]]


def test_scalar_without_the_nu_coupling_fails_the_single_eigenvalue_check():
    f = rmsprop_central_flow_multi(1)
    f.Q = f.Q.xreplace({p_nu: 0})
    names = {c.name: c.passed for c in f.verify(seed=1)}
    single = [n for n in names if "complementarity" in n]
    assert single and not names[single[0]]
    assert not all(names.values())


def test_diagonal_fixed_point_on_the_normal_form():
    """L = ½(1+z)x² + ½(z−z*)², diagonal RMSProp, both coordinates at the edge. At x = 0,
    H = diag(1+z, 1), u₁ = e_x·√(η/p_x), u₂ = e_z·√(η/p_z), N₁₁ = ∇(u₁ᵀHu₁) = (η/p_x)e_z, N₂₂ = 0, and
    the flow's rest point solves, by hand: S_eff,x = η(1+z)/√ν_x = 2, S_eff,z = η/√ν_z = 2,
    dz/dτ ∝ (z − z*) + ½X₁₁η/p_x = 0, dν_x/dτ ∝ 4(p_x/η)²X₁₁u₁ₓ² − ν_x = 0,
    dν_z/dτ ∝ (z − z*)² + 4(p_z/η)²X₂₂u₂_z² − ν_z = 0. SymPy solves them; the derived per-coordinate
    velocities vanish there, and z = z* − η²/8 is the discrete scalar cycle's z."""
    z, nx, nz, x1, x2 = sp.symbols("z nu_x nu_z X11 X22", positive=True)
    lr, zstar = sp.Rational(1, 5), sp.Rational(3, 2)
    px, pz = sp.sqrt(nx), sp.sqrt(nz)
    conditions = [lr * (1 + z) - 2 * px, lr - 2 * pz, (z - zstar) + x1 * lr / px / 2,
                  4 * (px / lr) ** 2 * x1 * (lr / px) - nx, (z - zstar) ** 2 + 4 * (pz / lr) ** 2 * x2 * (lr / pz) - nz]
    (sol,) = sp.solve(conditions, [z, nx, nz, x1, x2], dict=True)
    assert sol[z] == zstar - lr**2 / 8 and sp.simplify(sol[nx] - (1 + sol[z]) ** 2 * lr**2 / 4) == 0
    assert sol[nz] == lr**2 / 4 and sol[x2] > 0
    f = diagonal_rmsprop_central_flow(2)
    s = f.symbols
    X = {f.packed[0]: sol[x1], f.packed[1]: 0, f.packed[2]: sol[x2]}
    ux, uz = sp.sqrt(lr / sp.sqrt(sol[nx])), sp.sqrt(lr / sp.sqrt(sol[nz]))
    coords = [  # (g, ν, u₁, u₂, N₁₁, N₁₂, N₂₂) per coordinate x, z at x = 0
        (0, sol[nx], ux, 0, 0, 0, 0),
        (sol[z] - zstar, sol[nz], 0, uz, ux**2, 0, 0)]
    for gm, num, u1, u2, n11, n12, n22 in coords:
        vals = {s["grad"]: gm, s["nu"]: num, p: sp.sqrt(num), p_nu: 1 / (2 * sp.sqrt(num)), p_tau: 0,
                s["u1"]: u1, s["u2"]: u2, s["N11"]: n11, s["N12"]: n12, s["N22"]: n22, eta: lr,
                beta2: sp.Rational(9, 10), **X}
        assert sp.simplify(f.w_velocity.xreplace(vals)) == 0
        assert sp.simplify(f.nu_velocity.xreplace(vals)) == 0
