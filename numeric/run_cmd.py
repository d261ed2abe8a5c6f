"""``gdflows run``: a toy problem (registered, or a loss typed as text) through the one experiment
path, :func:`numeric.compare.compare`, in float64 by default, with files only under ``--out``.

Output directory (``--out``): ``results.h5`` (see :mod:`numeric.results` for the layout), written
after every chunk, and ``summary.json``: per process ``final_loss``, ``mean_loss_tail`` (mean loss
over the last 10% of steps), ``final_sharpness``, ``final_distance_to_gd``, ``final_params``,
``status``, ``steps_reached``, ``wall_seconds``; for ``cf`` also ``final_predicted_loss`` and
``final_sigma_trace`` (tr Σ); and, as for ``compare``, ``config``, ``eos`` and ``acceptance``.
``--resume DIR`` continues an interrupted or killed run.
"""
from __future__ import annotations

import dataclasses

# run's options that are not part of the configuration
_PRESENTATION = ("command", "list", "out", "overwrite", "resume")


def cmd_run(args, given: dict | None = None, stop=None) -> int:
    """Run, write (``--out``/``--resume``), print; exit code 2 if GD diverged, 128 + signal if stopped."""
    import jax

    from derive.errors import DeriveInputError

    from .compare import compare
    from .config import CompareConfig, config_from, resumed_config

    if args.list:
        from .problems import list_problems
        for name, description in list_problems():
            print(f"{name:14s} {description}")
        return 0
    if args.resume:
        if args.out or args.overwrite:
            raise DeriveInputError("--resume: goes without --out and --overwrite (the run directory is the one named)")
        cfg, _ = resumed_config(args.resume, "run", given or {})
    else:
        options = {k: v for k, v in vars(args).items() if k not in _PRESENTATION}
        # run's defaults are its parser's and the configuration's: only what it leaves unset (lr, steps,
        # flows) comes from the problem or the optimizer, never compare's network-tuned optimizer defaults
        fields = {f.name for f in dataclasses.fields(CompareConfig)}
        cfg = config_from(options, fields - {k for k, v in options.items() if v is None})
    jax.config.update("jax_enable_x64", cfg.float64)
    out = args.resume or args.out
    compare(cfg, out, write=out is not None, overwrite=args.overwrite, resume=bool(args.resume), progress=False,
            figures=False, checks=False, keep_w=None, stop_if_diverged=False, command="run", should_stop=stop)
    return 0
