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
# # 01 — Derivations: modified losses, Taylor expansions, central flows
#
# Every formula below is *derived* by `derive` (never typed in) and carries its own checks.
# Run as a notebook (`jupytext --to ipynb`) or as a script; the test suite executes it.

# %%
import sympy as sp

import derive
from derive import (
    NotAGradientField,
    central_flow,
    central_flow_multi,
    gradient_orders,
    gradient_taylor,
    modified_loss,
    modified_vector_field,
    sharpness_gradient,
)

eta = derive.eta


def show(result):
    print(result)
    for check in result.verify():
        print("   ", check)
        assert check.passed, check

# %% [markdown]
# ## 1. The 1-D quadratic: the modified loss is a steeper bowl
# On L = ½λθ², one GD step is (1 − ηλ)θ while gradient flow gives e^{−ηλ}θ. The order-1
# modified loss fixes the O(η²) mismatch: L_η = ½(λ + ηλ²/2)θ².

# %%
lam, theta = sp.symbols("lambda theta", positive=True)
L_quad = lam * theta**2 / 2
L_eta = modified_loss(1).on(L_quad, [theta], consts=[lam])
print("L_η =", sp.factor(L_eta))
assert sp.expand(L_eta - (lam + eta * lam**2 / 2) * theta**2 / 2) == 0

# %% [markdown]
# Flowing for time η on L_η and taking one GD step agree to O(η³):

# %%
t = sp.Symbol("t")
flow_end = theta * sp.exp(-(lam + eta * lam**2 / 2) * t)
mismatch = sp.series(flow_end.subs(t, eta) - (1 - eta * lam) * theta, eta, 0, 4).removeO()
print("flow(η) − GD step =", sp.factor(mismatch))
assert sp.expand(mismatch).coeff(eta, 2) == 0

# %% [markdown]
# ## 2. The general case, and the modified fields of higher order
# For any smooth L on Rⁿ, matching the flow map's series with the GD step (B-series over rooted
# trees) gives the modified field f̃ = −g + η f₁ + η² f₂ + …

# %%
show(modified_loss(1))
for order in (1, 2, 3):
    show(modified_vector_field(order))

# %% [markdown]
# ## 3. Why no modified loss exists at order 2
# f₂ = −⅓H²g − (1/12)T[g, g] is a gradient only if its Jacobian is symmetric. Its antisymmetric
# part is (1/12)(T[g, Hv] − H T[g, v]) ≠ 0 for a generic loss, so `modified_loss(2)` raises.

# %%
try:
    modified_loss(2)
except NotAGradientField as err:
    print(err)
print("general L:  ", gradient_orders(4))
print("quadratic L:", gradient_orders(4, assume="quadratic"))
show(modified_loss(3, assume="quadratic"))

# %% [markdown]
# A concrete witness: on L = ¼(x²y² − 1)² the Jacobian of f₂ is not symmetric.

# %%
x, y = sp.symbols("x y", real=True)
L_zhu = (x**2 * y**2 - 1) ** 2 / 4
J = modified_vector_field(2).on(L_zhu, (x, y)).jacobian((x, y))
asym = sp.simplify((J - J.T)[0, 1].subs({x: sp.Rational(1, 2), y: sp.Rational(3, 2)}))
print("(J − Jᵀ)₁₂ at (1/2, 3/2) =", asym)
assert asym != 0

# %% [markdown]
# ## 4. Third-order Taylor expansion and the gradient of the sharpness

# %%
show(gradient_taylor(3))
show(sharpness_gradient())
print(sharpness_gradient().taylor_at_eigenvector())

# %% [markdown]
# ## 5. The central flow: σ² and the predicted loss
# From dw/dτ = −η[∇L + ½σ²∇S] and dS/dτ = 0, SymPy solves for σ².

# %%
cf = central_flow()
show(cf)
print(cf.sigma2)
print(cf.predicted_loss)

# %% [markdown]
# On the normal-form model L = ½(1+z)x² + ½(z − z*)², GD has the exact 2-cycle (±σ, z_e) with
# z_e = 2/η − 1 and σ² = 2(z* − z_e). The central flow's σ² and predicted loss reproduce it.

# %%
z, zs = sp.symbols("z z_star", real=True)
L_nf = (1 + z) * x**2 / 2 + (z - zs) ** 2 / 2
ze = 2 / eta - 1
sig2 = cf.sigma2.on(L_nf, (x, z), consts=[zs], u=sp.Matrix([1, 0])).subs({x: 0, z: ze})
print("σ² at the centre:", sp.simplify(sig2))
pred = cf.predicted_loss.on(L_nf, (x, z), consts=[zs]).subs({x: 0, z: ze, derive.central.sigma2: sig2})
cycle = L_nf.subs({x: sp.sqrt(sig2), z: ze})
print("predicted loss − loss on the 2-cycle:", sp.simplify(pred - cycle))
assert sp.simplify(pred - cycle) == 0

# %% [markdown]
# ## 6. Two unstable eigenvalues: the complementarity problem

# %%
show(central_flow_multi(2))
