"""GD's central flow driven by the order-1 modified loss (``--cf-drift modified``): derived and
checked in derive, and on the normal form its σ² solved here by hand, which is not GD's exact cycle."""
import jax.numpy as jnp
import pytest
import sympy as sp

import derive
from numeric.cli import main
from numeric.problems import get_problem
from numeric.processes import Settings, make_process


@pytest.mark.parametrize("k", [1, 2])
def test_modified_drift_checks_pass_and_a_wrong_drift_fails_them(k):
    m = derive.central_flow_multi(k, drift="modified")
    assert all(c.passed for c in m.verify(seed=k))
    m.velocity_basis = (m.velocity_basis[0] + derive.eta**2 * derive.DL(derive.grad) / 4, m.velocity_basis[1])
    assert not all(c.passed for c in m.verify(seed=k))


def test_modified_drift_on_the_normal_form(x64):
    """½(1+z)x² + ½(z−z*)² at x = 0: ∇L̃ = (1 + η/2)(0, z − z*) and ∇S = e_z, so the rest point at
    S = 1 + z = 2/η has σ²/2 = −(1 + η/2)(z − z*): (1 + η/2) times GD's exact cycle variance."""
    p = get_problem("normal_form")
    eta, zs = p.known["lr"], p.known["z_star"]
    z_e = 2 / eta - 1
    z, s2 = sp.symbols("z s2")
    (sol,) = sp.solve([1 + z - sp.nsimplify(2 / eta), (1 + sp.nsimplify(eta) / 2) * (z - sp.nsimplify(zs)) + s2 / 2],
                      [z, s2], dict=True)
    assert float(sol[s2]) == pytest.approx((1 + eta / 2) * p.known["sigma2"])
    for drift, expect in (("loss", p.known["sigma2"]), ("modified", float(sol[s2]))):
        proc = make_process("cf", p, Settings(eta=eta, k_max=2, cf_drift=drift))
        state = proc.init(jnp.asarray(p.init))
        for _ in range(300):
            state = proc.step(state)
        assert float(jnp.trace(state.X)) == pytest.approx(expect, rel=1e-8), drift
        assert float(state.w[1]) == pytest.approx(z_e, abs=1e-9)


def test_cf_drift_is_gds_only(capsys):
    assert main(["compare", "--optimizer", "rmsprop", "--cf-drift", "modified", "--steps", "2"]) == 2
    assert "--cf-drift" in capsys.readouterr().err
