"""Scalar RMSProp's central flow (derive/adaptive.py): derived, verified, checks that can fail,
and an independent instantiation on the normal-form model."""
import sympy as sp

from derive import eta
from derive.adaptive import beta2, nu, rmsprop_central_flow
from derive.central import sigma2


def test_every_check_passes():
    checks = rmsprop_central_flow().verify(seed=3)
    assert len(checks) == 3 and all(c.passed for c in checks), [str(c) for c in checks]


def test_a_wrong_sigma2_fails_every_check():
    cf = rmsprop_central_flow()
    cf.sigma2_value = cf.sigma2_value * sp.Rational(11, 10)
    cf.expr = sp.expand(cf.w_ansatz.xreplace({sigma2: cf.sigma2_value}))
    assert not any(c.passed for c in cf.verify(seed=1)), [str(c) for c in cf.verify(seed=1)]


def test_on_the_normal_form_the_effective_sharpness_is_stationary():
    """L = ½(1+z)x² + ½(z−z*)² at x = 0: S = 1 + z along u = e_x, ∇S = e_z. With ν chosen so that
    S_eff = η(1+z)/√ν = 2, the instantiated velocity and the ν-equation keep S_eff fixed:
    d/dτ[η(1+z)/√ν] computed here by hand from the concrete loss is 0."""
    x, z = sp.symbols("x z", real=True)
    zstar, lr, b2 = sp.Rational(3, 2), sp.Rational(1, 5), sp.Rational(99, 100)
    loss = (1 + z) * x**2 / 2 + (z - zstar) ** 2 / 2
    cf = rmsprop_central_flow()
    point = {x: 0, z: sp.Rational(1, 2)}
    S_here = (1 + z).xreplace(point)
    nu_here = (lr * S_here / 2) ** 2                         # S_eff = 2
    u = sp.Matrix([1, 0])
    velocity = cf.on(loss, [x, z], eta=lr, u=u).xreplace({**point, nu: nu_here, beta2: b2})
    grad = sp.Matrix([sp.diff(loss, v) for v in (x, z)]).xreplace(point)
    s2 = cf.sigma2_value.xreplace({eta: lr, nu: nu_here, beta2: b2})
    s2 = s2.replace(lambda e: e.func.__name__ == "Dot", lambda e: _dot(e, grad))
    nu_dot = (1 - b2) / b2 * ((grad.T * grad)[0, 0] + s2 * S_here**2 - nu_here)
    dS_dt = velocity[1]                                       # S = 1 + z, so dS/dτ = dz/dτ
    dSeff = lr * dS_dt / sp.sqrt(nu_here) - lr * S_here * nu_dot / (2 * nu_here ** sp.Rational(3, 2))
    assert sp.simplify(dSeff) == 0
    assert velocity[0] == 0 and s2 != 0


def _dot(e, grad):
    """⟨a, b⟩ for the atoms of this model at x = 0: g = ∇L, ∇S = e_z."""
    vec = {"DL()": grad, "DL(u, u)": sp.Matrix([0, 1])}
    a, b = (vec[str(arg)] for arg in e.args)
    return (a.T * b)[0, 0]


def test_central_fixed_point_on_the_normal_form_and_its_distance_to_the_discrete_cycle():
    """The central flow's fixed point at x = 0 solves its three conditions: S_eff = η(1+z)/√ν = 2,
    dz/dτ = 0 (z − z* + σ²/2 = 0, since ∇S = e_z) and dν/dτ = 0 ((z − z*)² + σ²(1+z)² = ν).
    The discrete 2-cycle (x = ±η/2, z = z* − η²/8, ν = (1+z)²η²/4) satisfies the first two but
    not the third: there ‖∇L‖² = (1+z)²a² exactly, while the central flow's average
    ‖∇L(centre)‖² + σ²S² keeps (z − z*)² = σ⁴/4, a term of the order the theory drops. So z
    differs by O(η⁴): z_cf − z_cycle = η⁴/(128(1+z)²) + O(η⁶) (2.0e−6 at η = 0.2)."""
    z, sig2, nu_ = sp.symbols("z sigma2 nu", positive=True)
    lr, zstar = sp.Rational(1, 5), sp.Rational(3, 2)
    conditions = [lr * (1 + z) - 2 * sp.sqrt(nu_), z - zstar + sig2 / 2, (z - zstar) ** 2 + sig2 * (1 + z) ** 2 - nu_]
    sols = [s for s in sp.solve(conditions, [z, sig2, nu_], dict=True) if s[z].is_real and s[z] > -1]
    assert len(sols) == 1
    z_cf, s2_cf, nu_cf = sols[0][z], sols[0][sig2], sols[0][nu_]
    z_cycle = zstar - lr**2 / 8
    gap = sp.N(z_cf - z_cycle, 30)
    approx = lr**4 / (128 * (1 + z_cycle) ** 2)
    assert 0 < gap and abs(gap / approx - 1) < 1e-3, (gap, approx)
    # the derived σ² (stationary S_eff) vanishes dν/dτ and dw/dτ there: it is the fixed point's σ²
    cf = rmsprop_central_flow()
    x, zz = sp.symbols("x zz", real=True)
    loss = (1 + zz) * x**2 / 2 + (zz - zstar) ** 2 / 2
    velocity = cf.on(loss, [x, zz], eta=lr, u=sp.Matrix([1, 0])).xreplace({x: 0, zz: z_cf, nu: nu_cf,
                                                                              beta2: sp.Rational(9, 10)})
    assert all(abs(sp.N(v, 40)) < 1e-25 for v in velocity)
    grad = sp.Matrix([0, z_cf - zstar])
    s2 = cf.sigma2_value.xreplace({eta: lr, nu: nu_cf, beta2: sp.Rational(9, 10)})
    s2 = s2.replace(lambda e: e.func.__name__ == "Dot", lambda e: _dot(e, grad))
    assert abs(sp.N(s2 - s2_cf, 30)) < 1e-25
