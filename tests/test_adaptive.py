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
