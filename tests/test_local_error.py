"""Local error orders: one GD step vs one unit of τ of each flow, as fitted log-log slopes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from numeric import Settings, from_sympy, make_process

ETAS = 0.005 * 2.0 ** np.arange(5)   # ηS ≤ 0.25 on these problems: the asymptotic regime


def tanh_net():
    """A 1-hidden-layer tanh network (width 2) on three points, as one SymPy expression."""
    W = sp.symbols("W0 W1", real=True)
    b = sp.symbols("b0 b1", real=True)
    v = sp.symbols("v0 v1", real=True)
    data = [(-1, 0.5), (0.3, -0.2), (1.2, 0.8)]
    loss = sum((sum(v[j] * sp.tanh(W[j] * x + b[j]) for j in range(2)) - y) ** 2 for x, y in data) / 6
    params = (*W, *b, *v)
    init = [0.7, -1.1, 0.2, 0.4, 0.9, -0.6]
    return from_sympy(loss, params, init, name="tanh_net")


def problems():
    x, y = sp.symbols("x y", real=True)
    return [from_sympy((x**2 * y**2 - 1) ** 2 / 4 + x / 10, (x, y), [1.3, 0.6], name="zhu_tilted"),
            from_sympy(sp.exp(x * y) / 2 + (x - 1) ** 4 / 4 + sp.sin(y), (x, y), [0.4, -0.7], name="smooth"),
            tanh_net()]


def slope(etas, errors):
    return np.polyfit(np.log(etas), np.log(errors), 1)[0]


@pytest.mark.parametrize("process, order, expected", [("gf", 1, 2.0), ("mf", 1, 3.0), ("mf", 2, 4.0)])
def test_one_step_error_orders(x64, process, order, expected):
    rows = []
    for problem in problems():
        w0 = jnp.asarray(problem.init)

        def distance(eta):  # noqa: B023 (called within this iteration only)
            s = Settings(eta=eta, rtol=1e-13, atol=1e-16, mf_order=order)
            proc = make_process(process, problem, s)  # noqa: B023
            w_flow = proc.step(proc.init(w0)).w  # noqa: B023
            return jnp.linalg.norm(w_flow - (w0 - eta * problem.grad(w0)))  # noqa: B023

        dist = jax.jit(distance)
        errors = np.array([float(dist(eta)) for eta in ETAS])
        fitted = slope(ETAS, errors)
        rows.append((problem.name, fitted, errors))
        print(f"{process} order {order} on {problem.name}: slope {fitted:.3f}, errors {errors}")
    for name, fitted, _ in rows:
        assert abs(fitted - expected) <= 0.25, (name, fitted)
