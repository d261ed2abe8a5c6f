"""The experiment's configuration: :class:`CompareConfig` (one run of ``compare``, ``run``,
``sweep`` or ``numeric.compare``), its defaults per model, optimizer and toy problem, how option
values resolve into it (:func:`config_from`), its checks, its record in the run files, and the
problem and numerical settings it stands for."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .problem import Problem

@dataclass(frozen=True)
class CompareConfig:
    """One ``gdflows compare`` run. The defaults are the embedded default run.

    Attributes:
        problem: a registered toy problem (``gdflows run --list``) instead of a network; its
            learning rate and steps are used unless ``lr``/``steps`` are given.
        expression, init, param_names: a loss typed as text instead (``gdflows run --loss``, parsed
            safely), its initial point (``"x=1,y=2"``) and parameter order (``"x,y"``, default
            every symbol); ``lr`` and ``steps`` must be given.
        data, n, classes, data_dir: the data set (``digits``, ``cifar10`` with ``data_dir``, ``synthetic``).
        model, widths, activation, loss: the network and the loss (``mse`` or ``ce``).
        lr, steps, flows: learning rate, GD steps, processes.
        seed: initialisation seed (data subsets are deterministic).
        float64: double precision (default float32; matmuls at full precision either way).
        k_max, eig_tol, eig_every: eigen tracker capacity, LOBPCG tolerance, solve interval for
            the non-central processes.
        cf_substeps, mf_order, rtol, atol: central-flow substeps, modified-flow order, ODE tolerances.
        chunk: steps per compiled scan (results are written after each chunk).
        optimizer: ``gd``, ``rmsprop`` (scalar ν) or ``rmsprop-diag`` (per-coordinate ν); with an
            RMSProp the processes are the optimizer, its stable flow ``sf`` and central flow ``cf``.
        beta2, eps, bias_correction, warm_start: RMSProp's settings (ignored by GD).
        cf_drift: GD's central flow driven by the loss (``loss``, the paper's) or by the order-1
            modified loss (``modified``).
    """

    problem: str | None = None
    expression: str | None = None
    init: str | None = None
    param_names: str | None = None
    data: str = "digits"
    n: int = 1000
    classes: int = 10
    data_dir: str | None = None
    model: str = "mlp"
    widths: tuple = (32, 32)
    activation: str = "tanh"
    loss: str = "mse"
    lr: float = 0.335
    steps: int = 400
    flows: tuple = ("gd", "gf", "mf", "cf", "midpoint")
    seed: int = 0
    float64: bool = False
    k_max: int = 3
    eig_tol: float | None = None
    eig_every: int = 1
    cf_substeps: int = 8   # measured: 4 (the paper's) is 2.6% of ‖w_GD − w_GF‖ off the converged flow, 8 is 1.2%
    mf_order: int = 1
    rtol: float | None = None
    atol: float | None = None
    chunk: int = 25
    optimizer: str = "gd"
    beta2: float = 0.99
    eps: float = 0.0
    bias_correction: bool = False
    warm_start: int = 0
    cf_drift: str = "loss"

    def optimizer_settings(self):
        """None for GD, else the :class:`numeric.adaptive.RMSProp` of this run."""
        if self.optimizer == "gd":
            return None
        from .adaptive import RMSProp
        return RMSProp(beta2=self.beta2, eps=self.eps, bias_correction=self.bias_correction,
                       diagonal=self.optimizer == "rmsprop-diag", warm_start=self.warm_start)

    @property
    def name(self) -> str:
        if self.problem:
            return self.problem
        if self.expression:
            return "custom"
        if self.model != "mlp":
            return f"{self.data}-{self.model}-{self.activation}-{self.loss}"
        return f"{self.data}-{self.model}-{'-'.join(str(w) for w in self.widths)}-{self.activation}-{self.loss}"


DEFAULT = CompareConfig()
OPTIMIZERS = ("gd", "rmsprop", "rmsprop-diag")
# per optimizer: the default run's settings where they differ from GD's (see README, "Adaptive optimizers")
# (RMSProp's central flows keep the paper's 4 substeps: measured within 0.094% (scalar) and 0.53%
# (diagonal) of ‖w_opt − w_SF‖ of a 64-substep flow over their default runs; benchmarks/cf_convergence.py)
OPTIMIZER_DEFAULTS = {"gd": {}, "rmsprop": {"lr": 0.03, "beta2": 0.9, "bias_correction": True, "cf_substeps": 4},
                      "rmsprop-diag": {"lr": 0.002, "beta2": 0.99, "eps": 1e-8, "bias_correction": True,
                                       "warm_start": 5, "k_max": 5, "steps": 300, "eig_tol": 1e-4, "cf_substeps": 4}}


# per model: the default run's settings where they differ from the MLP's (see README, "Architectures")
# (learning rates from GD's sharpness trajectories, which reach 2/η within the run: the ViT, its head
# initialised at zero, sharpens from 0.30·2/η to it by step ~117; the ResNet sharpens from 0.67·2/η to it by step
# ~130 (both on 200 digits, to keep their runs short); the sorting Transformer with MSE never sharpens
# (its sharpness falls as it learns), with cross-entropy it sharpens from 0.5·2/η to it by step ~35;
# mf and midpoint can be asked for)
_ARCH = {"activation": "gelu", "steps": 300, "flows": ("gd", "gf", "cf")}
MODEL_DEFAULTS = {"cnn": {}, "resnet": {**_ARCH, "n": 200, "lr": 0.5}, "vit": {**_ARCH, "n": 200, "lr": 0.1},
                  "transformer": {**_ARCH, "data": "sort", "n": 500, "classes": 6, "loss": "ce", "lr": 0.2}}


def build_problem(cfg: CompareConfig):
    """The :class:`~numeric.problem.Problem` of ``cfg``: data, model, loss, initial parameters."""
    import jax

    from .data import load_dataset
    from .models import make_loss, make_model
    from .problem import from_jax

    if cfg.problem is not None:
        from .problems import get_problem
        return get_problem(cfg.problem, lr=cfg.lr)
    if cfg.expression is not None:
        from .problems import problem_from_string
        return problem_from_string(cfg.expression, cfg.init, params=cfg.param_names)
    kwargs = {"n": cfg.n, "classes": cfg.classes}
    if cfg.data == "cifar10":
        kwargs["data_dir"] = cfg.data_dir
    elif cfg.data == "synthetic":
        kwargs["seed"] = cfg.seed
    ds = load_dataset(cfg.data, **kwargs)
    model_kw = {"activation": cfg.activation}
    if cfg.model == "mlp":
        model_kw["widths"] = tuple(cfg.widths)
    model = make_model(cfg.model, ds.dim, ds.Y.shape[1], **model_kw)
    dtype = jax.numpy.float64 if cfg.float64 else jax.numpy.float32
    params = model.init(jax.random.PRNGKey(cfg.seed), dtype)
    X, Y = jax.numpy.asarray(ds.X, dtype), jax.numpy.asarray(ds.Y, dtype)
    return from_jax(make_loss(model, X, Y, cfg.loss), params, name=cfg.name, dense_limit=0,
                    hvp_columns=model.hvp_columns,
                    description=f"{ds.description}; {model.description}; {cfg.loss}")


def settings_for(cfg: CompareConfig):
    """Numerical settings (η is not among them: it is ``cfg.lr``, passed once to the driver); float32
    gets tolerances above its rounding floor."""
    from .processes import Settings

    single = not cfg.float64
    return Settings(rtol=cfg.rtol or (1e-5 if single else 1e-8),
                    atol=cfg.atol or (1e-7 if single else 1e-10), mf_order=cfg.mf_order,
                    cf_substeps=cfg.cf_substeps, k_max=cfg.k_max, eig_tol=cfg.eig_tol or (1e-5 if single else 1e-7),
                    eig_every=cfg.eig_every, sdcp_tol=1e-6 if single else 1e-9, cf_drift=cfg.cf_drift)


def process_settings(cfg: CompareConfig):
    """:func:`settings_for` with η = ``cfg.lr``: for processes built directly (``make_process``),
    outside :func:`numeric.driver.run`, which sets η itself."""
    return dataclasses.replace(settings_for(cfg), eta=cfg.lr)




# the fields that describe a built-in network problem; a problem of your own brings its own
NETWORK_FIELDS = ("problem", "expression", "init", "param_names", "data", "n", "classes", "data_dir", "model", "widths", "activation", "loss", "seed")


def experiment(what, options: dict) -> tuple[CompareConfig, "Problem | None"]:
    """``(cfg, problem)`` of :func:`compare`: a configuration with ``options`` applied, and the
    user's problem (None for the built-in ones, which :func:`build_problem` makes)."""
    import jax

    from derive.errors import DeriveInputError

    from .problem import Problem

    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise DeriveInputError(f"{unknown[0]}: not an option of compare; expected some of {sorted(fields)}")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    if isinstance(what, CompareConfig):
        return dataclasses.replace(what, **options), None
    if not isinstance(what, Problem):
        raise DeriveInputError(f"problem: expected a numeric.Problem (from_jax, from_sympy) or a CompareConfig, "
                               f"got {type(what).__name__}")
    given = sorted(set(options) & set(NETWORK_FIELDS))
    if given:
        raise DeriveInputError(f"{given[0]}: a problem of your own brings its own model and data; "
                               f"{', '.join(NETWORK_FIELDS)} do not apply")
    if "lr" not in options:
        raise DeriveInputError("lr: give the learning rate of your problem, e.g. compare(problem, lr=0.1)")
    x64 = bool(jax.config.jax_enable_x64)
    if options.get("float64", x64) != x64:
        raise DeriveInputError(f"float64: your problem runs in JAX's precision, which is "
                               f"{'float64' if x64 else 'float32'} (set jax_enable_x64 before building it)")
    cfg = dataclasses.replace(DEFAULT, **{**options, "float64": x64})
    if cfg.optimizer != "gd" and "flows" not in options:
        cfg = dataclasses.replace(cfg, flows=(cfg.optimizer, "sf", "cf"))
    return cfg, what


def config_record(cfg: CompareConfig, problem=None) -> dict:
    """The configuration as stored in ``run.json``, the results file and ``summary.json``: every
    field for a built-in problem; for a problem of your own its name and size instead of the
    network fields, which do not apply."""
    record = dataclasses.asdict(cfg)
    if problem is None:
        return record
    record = {k: v for k, v in record.items() if k not in NETWORK_FIELDS}
    return {"problem": problem.name, "source": "python", "n_params": problem.n, **record}


def check_config(cfg: CompareConfig) -> None:
    """One-line errors naming the argument for numbers that cannot run."""
    from derive.errors import DeriveInputError

    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise DeriveInputError(f"--lr: must be a finite number > 0, got {cfg.lr}")
    if not (isinstance(cfg.steps, int) and cfg.steps > 0):
        raise DeriveInputError(f"--steps: must be a positive integer, got {cfg.steps!r}")
    if cfg.cf_drift not in ("loss", "modified"):
        raise DeriveInputError(f"--cf-drift: expected loss or modified, got {cfg.cf_drift!r}")
    if cfg.cf_drift != "loss" and cfg.optimizer != "gd":
        raise DeriveInputError("--cf-drift: the modified-loss drift is GD's; RMSProp's central flow has none yet")
    if cfg.optimizer not in OPTIMIZERS:
        raise DeriveInputError(f"--optimizer: unknown {cfg.optimizer!r}; expected one of {list(OPTIMIZERS)}")
    if not (math.isfinite(cfg.beta2) and 0 < cfg.beta2 < 1):
        raise DeriveInputError(f"--beta2: must be in (0, 1), got {cfg.beta2}")
    if not (math.isfinite(cfg.eps) and cfg.eps >= 0):
        raise DeriveInputError(f"--eps: must be a finite number ≥ 0, got {cfg.eps}")


def for_optimizer(cfg: CompareConfig, explicit=()) -> CompareConfig:
    """``cfg`` with the optimizer's defaults (lr, β₂, ε, bias correction, flows) for every field not in ``explicit``."""
    if cfg.optimizer not in OPTIMIZER_DEFAULTS:
        return cfg
    changes = {k: v for k, v in OPTIMIZER_DEFAULTS[cfg.optimizer].items() if k not in explicit}
    if cfg.optimizer != "gd" and "flows" not in explicit:
        changes["flows"] = (cfg.optimizer, "sf", "cf")
    return dataclasses.replace(cfg, **changes)


def config_from(options: dict, explicit=()) -> CompareConfig:
    """The configuration of one run from option values (CLI destinations or field names; others are
    ignored): the optimizer's and the toy problem's defaults fill every field not in ``explicit``.
    ``compare``, ``sweep`` and ``merge`` resolve their runs here."""
    options = {OPTION_FIELDS.get(k, k): v for k, v in options.items()}
    explicit = {OPTION_FIELDS.get(k, k) for k in explicit}
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    cfg = CompareConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()
                           if k in fields and v is not None})
    return for_problem(for_optimizer(for_model(cfg, explicit), explicit), options.get("lr") if "lr" in explicit else None,
                       options.get("steps") if "steps" in explicit else None, explicit)


def for_model(cfg: CompareConfig, explicit=()) -> CompareConfig:
    """``cfg`` with the model's defaults (data, activation, learning rate, steps: :data:`MODEL_DEFAULTS`)
    for every field not in ``explicit``."""
    changes = {k: v for k, v in MODEL_DEFAULTS.get(cfg.model, {}).items() if k not in explicit}
    return dataclasses.replace(cfg, **changes)


def resumed_config(directory, command: str, given: dict) -> tuple[CompareConfig, dict]:
    """The configuration stored in the run directory of a ``command`` run, after checking that it
    can be resumed with the options ``given`` (CLI destinations); and every stored option."""
    from .recorder import check_resumable

    stored = check_resumable(directory, command, {OPTION_FIELDS.get(k, k): v for k, v in given.items()})
    fields = {f.name for f in dataclasses.fields(CompareConfig)}
    cfg = CompareConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields})
    return cfg, stored


# CLI destinations that are CompareConfig fields under another name
OPTION_FIELDS = {"loss_fn": "loss"}


def for_problem(cfg: CompareConfig, lr: float | None, steps: int | None, explicit=()) -> CompareConfig:
    """``cfg`` with the learning rate and steps resolved: given values, else the problem's or the
    defaults. Toy problems run in float64 unless ``float64`` is in ``explicit``; a loss typed as
    text needs ``lr``, ``steps`` and ``init``."""
    from derive.errors import DeriveInputError

    if cfg.init is not None and cfg.expression is None:
        raise DeriveInputError("init: --init goes with --loss; registered problems have their own")
    if cfg.problem is not None and cfg.expression is not None:
        raise DeriveInputError("--problem: a registered problem or a --loss, not both")
    double = {} if "float64" in explicit else {"float64": True}
    if cfg.expression is not None:
        for name, value in (("init", cfg.init), ("lr", lr), ("steps", steps)):
            if value is None:
                example = ", e.g. x=1,y=2 (every parameter)" if name == "init" else ""
                raise DeriveInputError(f"{name}: --{name} is required for a custom loss{example}")
        return dataclasses.replace(cfg, lr=lr, steps=steps, **double)
    if cfg.problem is not None:
        from .problems import REGISTRY
        if cfg.problem not in REGISTRY:
            raise DeriveInputError(f"--problem: unknown {cfg.problem!r}; expected one of {sorted(REGISTRY)}")
        spec = REGISTRY[cfg.problem]
        return dataclasses.replace(cfg, lr=lr or spec.default_lr, steps=steps or spec.default_steps, **double)
    own = OPTIMIZER_DEFAULTS.get(cfg.optimizer, {})
    return dataclasses.replace(cfg, lr=lr or own.get("lr", cfg.lr), steps=steps or own.get("steps", cfg.steps))
