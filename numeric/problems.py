"""The registry of small problems with known answers (the CLI's ``--problem`` values).

Each entry builds a SymPy loss and turns it into a :class:`~numeric.problem.Problem` with
:func:`~numeric.problem.from_sympy` (generated loss, gradient and Hessian). ``Problem.known`` holds
answers computed from closed forms, never from simulation, evaluated at the learning rate the
problem was built for (``known["lr"]``); where an answer depends on η a callable is stored too.

==============  ==========================================  =====  ======  ==============================
name            loss                                        lr     steps   known
==============  ==========================================  =====  ======  ==============================
quadratic1d     ½λθ²                                        0.5    50      GD (1−ηλ)^kθ₀, GF, order-1 MF
quadratic       ½(w−w*)ᵀA(w−w*), A SPD 5×5 (rational)       0.15   200     eig(A), w*, GD iterates
quartic         ¼(x²−1)²                                    1.05   300     GD 2-cycle, central fixed point
factorization   ½(xy−1)²                                    0.35   500     imbalance law per GD step
zhu             ¼(x²y²−1)²                                  0.2    1000    S on the minima, CF endpoint
normal_form     ½(1+z)x² + ½(z−z*)²                         0.8    300     exact GD 2-cycle, CF = (0, z_e)
two_eig         two decoupled normal forms                  0.8    300     both cycles; two eigs at 2/η
tanh_net        MSE of a 2-4-1 tanh net on 8 points         0.5    1000    (data only; EoS by experiment)
==============  ==========================================  =====  ======  ==============================

``import numeric.problems`` imports neither SymPy nor JAX; the builders import them when called.

References:
    Cohen et al., "Understanding Optimization in Deep Learning with Central Flows" (2024/2025), for the
    quartic, normal-form and factorisation examples; Zhu et al., "Understanding Edge-of-Stability
    Training Dynamics with a Minimalist Example" (ICLR 2023; arXiv 2022) for ``zhu``.
"""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["REGISTRY", "ProblemSpec", "get_problem", "list_problems", "parse_init", "problem_from_string"]


def _error(message: str) -> Exception:
    """A ``DeriveInputError`` (imported lazily: ``derive`` pulls in SymPy)."""
    from derive.errors import DeriveInputError

    return DeriveInputError(" ".join(message.split()))


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------- arguments
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def parse_init(text: str, name: str = "init") -> dict[str, float]:
    """Parse ``"x=1.5, y=-0.5"`` into ``{"x": 1.5, "y": -0.5}`` without evaluating anything.

    Entries are separated by commas (or semicolons); each is ``name=number`` with a parameter-like
    name and a finite float literal (``float`` syntax: ``1``, ``-2.5e-3``).

    Raises:
        DeriveInputError: one line naming ``name`` for an empty text, an entry that is not
            ``name=value``, a value that is not a finite number, or a name given twice.
    """
    if not isinstance(text, str):
        raise _error(f"{name}: expected text such as 'x=1.5,y=0.5', got {type(text).__name__}")
    entries = [e.strip() for e in re.split(r"[,;]", text)]
    if not text.strip():
        raise _error(f"{name}: empty; expected name=value pairs such as 'x=1.5,y=0.5'")
    out: dict[str, float] = {}
    for entry in entries:
        if not entry:
            raise _error(f"{name}: empty entry in {_short(text)}; expected name=value pairs such as 'x=1.5,y=0.5'")
        key, sep, raw = (s.strip() for s in entry.partition("="))
        if not sep or not _NAME.match(key):
            raise _error(f"{name}: entry {_short(entry)} is not name=value (e.g. 'x=1.5')")
        try:
            value = float(raw)
        except ValueError:
            raise _error(f"{name}: value of {key!r} is not a number: {_short(raw)}") from None
        if not math.isfinite(value):
            raise _error(f"{name}: value of {key!r} must be finite, got {_short(raw)}")
        if key in out:
            raise _error(f"{name}: {key!r} is given twice")
        out[key] = value
    return out


def _check_lr(lr: Any) -> float:
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise _error(f"lr: expected a positive number, got {_short(lr)}") from None
    if not (math.isfinite(value) and value > 0):
        raise _error(f"lr: expected a positive number, got {_short(lr)}")
    return value


def _check_real(value: Any, name: str, positive: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _error(f"{name}: expected a number, got {_short(value)}") from None
    if not math.isfinite(out) or (positive and out <= 0):
        raise _error(f"{name}: expected a {'positive ' if positive else ''}finite number, got {_short(value)}")
    return out


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise _error(f"{name}: expected an integer in [{lo}, {hi}], got {_short(value)}")
    return int(value)


def _build(name, loss, params, init, default_init, description, known):
    from numeric.problem import from_sympy

    init = default_init if init is None else init
    values = parse_init(init) if isinstance(init, str) else init   # checked by from_sympy
    return from_sympy(loss, params, values, name=name, description=description, known=known)


# ----------------------------------------------------------------------------------------- builders
def _quadratic1d(lam: float = 1.0, init=None, lr: float = 0.5):
    """½λθ²: GD θ_k = (1−ηλ)^k θ₀; gradient flow θ(t) = e^{−λt}θ₀ at t = kη; the order-1
    modified flow θ' = −(λ + ηλ²/2)θ gives e^{−(λ+ηλ²/2)kη}θ₀."""
    import sympy as sp

    lam, lr = _check_real(lam, "lam"), _check_lr(lr)
    theta = sp.Symbol("theta", real=True)
    problem = _build("quadratic1d", sp.Rational(1, 2) * sp.nsimplify(lam) * theta**2, [theta], init,
                     {"theta": 1.0}, "½λθ²: linear GD, gradient flow and modified flows in closed form", {})
    t0 = float(problem.init[0])
    problem.known.update(
        lr=lr, lam=lam, theta0=t0,
        gd=lambda k, eta=lr: (1 - eta * lam) ** np.asarray(k) * t0,
        gf=lambda k, eta=lr: np.exp(-lam * np.asarray(k) * eta) * t0,
        mf1=lambda k, eta=lr: np.exp(-(lam + eta * lam**2 / 2) * np.asarray(k) * eta) * t0,
    )
    return problem


_QUADRATIC_EIGS = ("1/10", "1/2", "1", "3", "10")


def _quadratic(n: int = 5, seed: int = 0, init=None, lr: float = 0.15):
    """½(w−w*)ᵀA(w−w*) with A = Q diag(λ) Qᵀ exactly rational: Q is the Cayley transform
    (I−K)(I+K)⁻¹ of a random integer skew-symmetric K, so the eigenvalues are exact."""
    import sympy as sp

    n, seed, lr = _check_int(n, "n", 1, 12), _check_int(seed, "seed", 0, 2**31), _check_lr(lr)
    rng = np.random.default_rng(seed)
    eigs = [sp.Rational(e) for e in _QUADRATIC_EIGS[:n]] if n <= 5 else \
        [sp.Rational(int(round(10 ** (2 * i / (n - 1) - 1) * 100)), 100) for i in range(n)]
    K = sp.zeros(n, n)
    for i in range(n):
        for j in range(i + 1, n):
            K[i, j] = int(rng.integers(-2, 3))
            K[j, i] = -K[i, j]
    eye = sp.eye(n)
    Q = (eye - K) * (eye + K).inv()
    A = Q * sp.diag(*eigs) * Q.T
    w_star = [sp.Rational(int(v), 4) for v in rng.integers(-6, 7, n)]
    ws = sp.symbols(f"w0:{n}", real=True)
    d = sp.Matrix([w - s for w, s in zip(ws, w_star)])
    loss = sp.Rational(1, 2) * (d.T * A * d)[0, 0]
    A_np = np.array(A.evalf(20).tolist(), dtype=float)
    ws_np = np.array([float(v) for v in w_star])
    problem = _build("quadratic", loss, ws, init, [0.0] * n,
                     f"½(w−w*)ᵀA(w−w*) in {n}-D, A SPD with eigenvalues {', '.join(map(str, eigs))}", {})
    w0 = problem.init.copy()

    def iterate(k, eta=lr):
        """GD's k-th iterate: w* + (I − ηA)^k (w₀ − w*)."""
        return ws_np + np.linalg.matrix_power(np.eye(n) - eta * A_np, int(k)) @ (w0 - ws_np)

    problem.known.update(lr=lr, A=A_np, eigenvalues=np.array(sorted((float(e) for e in eigs), reverse=True)),
                         w_star=ws_np, iterate=iterate, gd_stable=bool(lr * float(max(eigs)) < 2))
    return problem


def _quartic_cycle(eta: float):
    """The GD 2-cycle (p, q), p > q > 0, of ¼(x²−1)²: p² + q² = (η+1)/η, pq = 1/η (None if η ≤ 1)."""
    if eta <= 1:
        return None
    s, d = math.sqrt((eta + 3) / eta), math.sqrt((eta - 1) / eta)  # p + q, p − q
    return ((s + d) / 2, (s - d) / 2)


def _quartic(init=None, lr: float = 1.05):
    """¼(x²−1)²: GD's exact 2-cycle for 1 < η < √5 − 1; the central flow's fixed point S(x) = 2/η."""
    import sympy as sp

    lr = _check_lr(lr)
    x = sp.Symbol("x", real=True)
    loss = (x**2 - 1) ** 2 / 4
    problem = _build("quartic", loss, [x], init, {"x": 0.5},
                     "¼(x²−1)²: exact GD 2-cycle; the central flow's predicted loss is ~10% off (cubic terms)", {})
    L = lambda v: (v * v - 1) ** 2 / 4  # noqa: E731
    cycle = _quartic_cycle(lr)
    # Central flow in 1-D: S = 3x² − 1 = 2/η fixes x; stationarity x³ − x + ½σ²·6x = 0 gives σ².
    xc2 = (1 + 2 / lr) / 3
    sigma2 = (1 - xc2) / 3
    problem.known.update(
        lr=lr, cycle=cycle, cycle_fn=_quartic_cycle, stable_lr=(1.0, math.sqrt(5) - 1),
        cycle_stable=bool(1 < lr < math.sqrt(5) - 1),
        cycle_average_loss=None if cycle is None else (L(cycle[0]) + L(cycle[1])) / 2,
        central_x=math.sqrt(xc2) if 0 < xc2 else None, central_sigma2=sigma2,
        central_predicted_loss=L(math.sqrt(xc2)) + sigma2 / lr if 0 < xc2 < 1 else None,
    )
    return problem


def _factorization_step_imbalance(w, eta: float) -> float:
    """x′² − y′² after one GD step on ½(xy−1)² from w = (x, y): (x² − y²)(1 − η²(xy−1)²)."""
    x, y = float(w[0]), float(w[1])
    return (x * x - y * y) * (1 - eta**2 * (x * y - 1) ** 2)


def _factorization(init=None, lr: float = 0.35):
    """½(xy−1)²: the imbalance x² − y² shrinks by 1 − η²(xy−1)² each GD step, exactly."""
    import sympy as sp

    lr = _check_lr(lr)
    x, y = sp.symbols("x y", real=True)
    problem = _build("factorization", (x * y - 1) ** 2 / 2, [x, y], init, {"x": 2.5, "y": 0.1},
                     "½(xy−1)²: exact imbalance law; GD ends well below 2/η, where the central flow is inaccurate",
                     {})
    problem.known.update(
        lr=lr, imbalance=lambda w: float(w[0]) ** 2 - float(w[1]) ** 2,
        imbalance_after_step=lambda w, eta=lr: _factorization_step_imbalance(w, eta),
        # On the minima xy = 1 the Hessian is (y, x)(y, x)ᵀ: S = x² + y² = sqrt((x²−y²)² + 4).
        minimum_sharpness=lambda w: float(w[0]) ** 2 + float(w[1]) ** 2,
        sharpness_limit=2 / lr, central_flow_accurate=False,
    )
    return problem


def _zhu_endpoint(eta: float, x_larger: bool = True):
    """The point of the minima x²y² = 1 (x, y > 0) with sharpness 2(x² + y²) = 2/η (None if η > ½)."""
    disc = 1 / eta**2 - 4
    if disc < 0:
        return None
    big, small = math.sqrt((1 / eta + math.sqrt(disc)) / 2), math.sqrt((1 / eta - math.sqrt(disc)) / 2)
    return (big, small) if x_larger else (small, big)


def _zhu(init=None, lr: float = 0.2):
    """¼(x²y²−1)²: sharpness 2(x² + y²) on the minima; GD enters EoS and ends just below 2/η."""
    import sympy as sp

    lr = _check_lr(lr)
    x, y = sp.symbols("x y", real=True)
    problem = _build("zhu", (x**2 * y**2 - 1) ** 2 / 4, [x, y], init, {"x": 2.5, "y": 0.2},
                     "¼(x²y²−1)² (Zhu et al. 2022): GD sharpens past 2/η, then settles just below it", {})
    x0, y0 = problem.init
    end = _zhu_endpoint(lr, abs(x0) >= abs(y0))
    if end is not None:
        end = (math.copysign(end[0], x0), math.copysign(end[1], y0))
    problem.known.update(
        lr=lr, sharpness_limit=2 / lr, minimum_sharpness=lambda w: 2 * (float(w[0]) ** 2 + float(w[1]) ** 2),
        central_endpoint=end, central_endpoint_fn=_zhu_endpoint,
    )
    return problem


def _normal_form_answers(eta: float, z_star: float) -> dict:
    """The exact GD 2-cycle (±σ, z_e) of ½(1+z)x² + ½(z−z*)², z_e = 2/η − 1, σ² = 2(z* − z_e)."""
    z_e = 2 / eta - 1
    sigma2 = 2 * (z_star - z_e)
    exists = sigma2 > 0
    sigma = math.sqrt(sigma2) if exists else None
    return dict(
        z_e=z_e, sigma2=sigma2, center=(0.0, z_e),
        cycle=((sigma, z_e), (-sigma, z_e)) if exists else None,
        cycle_stable=bool(exists and sigma2 < 1 / eta),
        # On the cycle L = ½(1+z_e)σ² + ½(z_e−z*)² = σ²/η + σ⁴/8 at both points; the central flow's
        # prediction L(centre) + ½σ²·(2/η) is the same number.
        average_loss=sigma2 / eta + sigma2**2 / 8 if exists else None,
    )


def _normal_form(z_star: float = 1.75, init=None, lr: float = 0.8):
    """½(1+z)x² + ½(z−z*)²: GD's exact 2-cycle, which the central flow reproduces exactly."""
    import sympy as sp

    z_star, lr = _check_real(z_star, "z_star"), _check_lr(lr)
    x, z = sp.symbols("x z", real=True)
    loss = (1 + z) * x**2 / 2 + (z - sp.nsimplify(z_star)) ** 2 / 2
    problem = _build("normal_form", loss, [x, z], init, {"x": 0.1, "z": 0.0},
                     "½(1+z)x² + ½(z−z*)²: exact GD 2-cycle (±σ, 2/η−1); the central flow is exact", {})
    problem.known.update(lr=lr, z_star=z_star, **_normal_form_answers(lr, z_star))
    problem.known["cycle_fn"] = lambda eta: _normal_form_answers(eta, z_star)["cycle"]
    return problem


def _two_eig(a: float = 1.75, b: float = 2.0, init=None, lr: float = 0.8):
    """Two decoupled normal forms (z* = a and b): two Hessian eigenvalues reach 2/η together."""
    import sympy as sp

    a, b, lr = _check_real(a, "a"), _check_real(b, "b"), _check_lr(lr)
    x1, z1, x2, z2 = sp.symbols("x1 z1 x2 z2", real=True)
    loss = ((1 + z1) * x1**2 / 2 + (z1 - sp.nsimplify(a)) ** 2 / 2
            + (1 + z2) * x2**2 / 2 + (z2 - sp.nsimplify(b)) ** 2 / 2)
    problem = _build("two_eig", loss, [x1, z1, x2, z2], init, {"x1": 0.1, "z1": 0.0, "x2": 0.1, "z2": 0.0},
                     "two decoupled normal forms: a GD 2-cycle with two Hessian eigenvalues at 2/η", {})
    one, two = _normal_form_answers(lr, a), _normal_form_answers(lr, b)
    both = one["cycle"] is not None and two["cycle"] is not None
    s1, s2 = (one["cycle"][0][0], two["cycle"][0][0]) if both else (None, None)
    problem.known.update(
        lr=lr, a=a, b=b, z_e=one["z_e"], sigma2=(one["sigma2"], two["sigma2"]),
        center=(0.0, one["z_e"], 0.0, two["z_e"]),
        # x₁ and x₂ both flip sign each step; the cycle through (σ₁, z_e, σ₂, z_e) and its mirror.
        cycle=((s1, one["z_e"], s2, two["z_e"]), (-s1, one["z_e"], -s2, two["z_e"])) if both else None,
        cycle_stable=bool(one["cycle_stable"] and two["cycle_stable"]),
        average_loss=one["average_loss"] + two["average_loss"] if both else None,
        n_critical=2,
    )
    return problem


def _tanh_net(seed: int = 2, points: int = 8, inputs: int = 2, width: int = 4, init=None, lr: float = 0.5):
    """MSE ½·mean_i (f(x_i) − y_i)² of f(x) = Σ_j W2_j tanh(W1_j · x + b1_j) + b2, as one SymPy expression.

    Data and initial weights come from ``numpy.random.default_rng(seed)``: x_i ~ U[−1, 1]^inputs,
    y_i ~ U[−1, 1], W1, b1, W2 ~ N(0, 0.7²), b2 = 0. With the defaults (17 parameters) GD at η = 0.5
    (float64, measured, not a closed form) starts at sharpness ≈ 0.53·(2/η), sharpens progressively to
    2/η at step ≈ 300, overshoots to ≈ 1.25·(2/η) by step ≈ 460, where the loss spikes and the sharpness
    drops to ≈ 0.87·(2/η); the cycle repeats (spikes near steps 670 and 850) with the sharpness within
    0.87–1.25 × 2/η, while the loss falls non-monotonically from 0.255 to 0.018 at step 1000.
    """
    import sympy as sp

    seed, lr = _check_int(seed, "seed", 0, 2**31), _check_lr(lr)
    points, inputs = _check_int(points, "points", 1, 64), _check_int(inputs, "inputs", 1, 8)
    width = _check_int(width, "width", 1, 16)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (points, inputs))
    Y = rng.uniform(-1, 1, points)
    W1 = rng.normal(0, 0.7, (width, inputs))
    b1 = rng.normal(0, 0.7, width)
    W2 = rng.normal(0, 0.7, width)
    sW1 = [[sp.Symbol(f"W1_{j}_{k}", real=True) for k in range(inputs)] for j in range(width)]
    sb1 = [sp.Symbol(f"b1_{j}", real=True) for j in range(width)]
    sW2 = [sp.Symbol(f"W2_{j}", real=True) for j in range(width)]
    sb2 = sp.Symbol("b2", real=True)
    params = [s for row in sW1 for s in row] + sb1 + sW2 + [sb2]
    residuals = []
    for i in range(points):
        hidden = [sp.tanh(sp.Add(*[sW1[j][k] * sp.Float(X[i, k]) for k in range(inputs)]) + sb1[j])
                  for j in range(width)]
        residuals.append(sp.Add(*[sW2[j] * hidden[j] for j in range(width)]) + sb2 - sp.Float(Y[i]))
    loss = sp.Rational(1, 2 * points) * sp.Add(*[r**2 for r in residuals])
    default = list(W1.ravel()) + list(b1) + list(W2) + [0.0]
    problem = _build("tanh_net", loss, params, init, default,
                     f"MSE of a {inputs}-{width}-1 tanh network on {points} fixed points: "
                     "progressive sharpening, then edge of stability", {})
    problem.known.update(lr=lr, X=X, Y=Y, architecture=(inputs, width, 1), sharpness_limit=2 / lr)
    return problem


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ProblemSpec:
    """A registered problem.

    Attributes:
        name: the ``--problem`` value.
        description: one line.
        builder: ``builder(**options) -> Problem``; every builder takes ``init`` and ``lr`` (the
            learning rate that ``Problem.known`` is evaluated at) and problem-specific options.
        default_lr: learning rate of the default experiment.
        default_steps: number of GD steps of the default experiment.
        other_lrs: further learning rates of interest (e.g. the quartic at 1.2).
        tags: e.g. ``"eos"`` (GD reaches the edge of stability), ``"cf_exact"``, ``"cf_inaccurate"``,
            ``"multi_eig"`` (more than one eigenvalue at 2/η).
    """

    name: str
    description: str
    builder: Callable[..., Any]
    default_lr: float
    default_steps: int
    other_lrs: tuple[float, ...] = ()
    tags: tuple[str, ...] = ()
    options: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(inspect.signature(self.builder).parameters))

    def build(self, **overrides):
        """The problem, with ``overrides`` of the builder's options (``init``, ``lr``, ...)."""
        unknown = [k for k in overrides if k not in self.options]
        if unknown:
            raise _error(f"{unknown[0]}: not an option of problem {self.name!r}; options: {list(self.options)}")
        overrides.setdefault("lr", self.default_lr)
        return self.builder(**overrides)


REGISTRY: dict[str, ProblemSpec] = {
    spec.name: spec
    for spec in [
        ProblemSpec("quadratic1d", "½λθ²: GD, gradient flow and order-1 modified flow in closed form",
                    _quadratic1d, 0.5, 50, tags=("linear",)),
        ProblemSpec("quadratic", "½(w−w*)ᵀA(w−w*), 5-D, exact rational SPD A with eigenvalues 0.1 … 10",
                    _quadratic, 0.15, 200, tags=("linear",)),
        ProblemSpec("quartic", "¼(x²−1)²: exact GD 2-cycle; central flow's loss ~10% off", _quartic, 1.05, 300,
                    other_lrs=(1.2,), tags=("eos", "cycle")),
        ProblemSpec("factorization", "½(xy−1)²: exact imbalance law; GD ends well below 2/η (central flow inaccurate)",
                    _factorization, 0.35, 500, tags=("eos", "cf_inaccurate")),
        ProblemSpec("zhu", "¼(x²y²−1)² (Zhu et al. 2022): sharpening to EoS, ends just below 2/η", _zhu, 0.2, 1000,
                    tags=("eos",)),
        ProblemSpec("normal_form", "½(1+z)x² + ½(z−z*)²: exact GD 2-cycle reproduced exactly by the central flow",
                    _normal_form, 0.8, 300, tags=("eos", "cycle", "cf_exact")),
        ProblemSpec("two_eig", "two decoupled normal forms: two Hessian eigenvalues at 2/η", _two_eig, 0.8, 300,
                    tags=("eos", "cycle", "cf_exact", "multi_eig")),
        ProblemSpec("tanh_net", "MSE of a 2-4-1 tanh net on 8 points (17 params): sharpening, then EoS",
                    _tanh_net, 0.5, 1000, tags=("eos", "network")),
    ]
}


def list_problems() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` in registry order."""
    return [(s.name, s.description) for s in REGISTRY.values()]


def get_problem(name: str, **overrides):
    """Build the registered problem ``name``.

    Args:
        name: a key of :data:`REGISTRY`.
        **overrides: builder options: ``init`` (``"x=1.5,y=0.5"``, a dict or a sequence), ``lr`` (the
            learning rate ``known`` is evaluated at; default ``spec.default_lr``), and per-problem
            options such as ``lam`` (quadratic1d) or ``z_star`` (normal_form).

    Raises:
        DeriveInputError: unknown name or option, or a bad value (one line naming it).
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise _error(f"problem: unknown value {_short(name)}; expected one of {list(REGISTRY)}")
    return REGISTRY[name].build(**overrides)


def problem_from_string(loss: str, init: str | dict, params: str | None = None, name: str = "custom"):
    """A problem from a loss written as text, parsed safely by :func:`derive.parse_loss` (no ``eval``).

    Args:
        loss: e.g. ``"(x*y - 1)^2/2"``.
        init: ``"x=1.5,y=0.5"``, a dict ``{name: value}`` or a sequence in parameter order.
        params: comma-separated parameter names (``"x,y"``) or a sequence of names; default: every
            symbol of ``loss`` in natural order.
        name: label of the problem.

    Raises:
        DeriveInputError: (its subclass ``LossParseError`` for ``loss``) with one line naming ``loss``,
            ``params`` or ``init``.
    """
    from derive import parse_loss

    if isinstance(params, str):
        names = [p.strip() for p in params.split(",")]
        if not all(names):
            raise _error(f"params: empty name in {_short(params)}; expected comma-separated names such as 'x,y'")
        params = names
    expr, syms, _ = parse_loss(loss, params=params, name="loss")
    return _build(name, expr, list(syms), init, None, f"custom loss {_short(loss, 60)}", {})
