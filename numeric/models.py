"""Networks as plain functions over parameter pytrees, and the full-batch losses built on them.

A :class:`Model` is a pair of pure functions, ``init(key, dtype) -> params`` and
``apply(params, X) -> logits``, so :func:`make_loss` gives a ``params -> scalar`` loss that
:func:`numeric.problem.from_jax` turns into a :class:`~numeric.problem.Problem`. No neural-network
library is needed: parameters are tuples of ``{"w": ..., "b": ...}`` dicts.

Conventions:
    * Initialisation is LeCun normal: every weight ~ N(0, 1/fan_in) (fan_in = inputs of a dense
      layer, 3·3·C_in for a 3×3 convolution), every bias 0. ``init(jax.random.PRNGKey(seed))`` is
      deterministic; float32 by default, float64 via ``dtype`` (with ``jax_enable_x64`` on).
    * Every matrix product and convolution runs at ``jax.lax.Precision.HIGHEST`` so float32 results
      agree between CPU and GPU (no TF32).
    * ``X`` is always flat, shape (n, in_dim). The CNN reads it in CIFAR's layout: for each image the
      R, G, B planes of H×W pixels one after the other, i.e. ``X.reshape(n, C, H, W)``, transposed
      inside to NHWC.

References:
    Cohen et al., "Understanding Optimization in Deep Learning with Central Flows" (the reference
    setup: MLP 3072-256-256-4 with GELU, MSE ½‖f − onehot‖² averaged over examples).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ACTIVATIONS", "LOSSES", "MODELS", "Model", "cnn", "count_params", "cross_entropy_loss",
           "make_loss", "make_model", "mlp", "mse_loss"]

_HI = jax.lax.Precision.HIGHEST

ACTIVATIONS: dict[str, Callable] = {
    "gelu": jax.nn.gelu,  # JAX's default: the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


def _error(message: str) -> Exception:
    """A ``DeriveInputError`` (imported lazily: importing ``derive`` may pull in SymPy)."""
    from derive.errors import DeriveInputError

    return DeriveInputError(message)


def _choice(value: Any, options, name: str) -> str:
    if value not in options:
        raise _error(f"{name}: unknown value {value!r}; expected one of {sorted(options)}")
    return value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise _error(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Model:
    """A network as two pure functions.

    Attributes:
        name: label ("mlp", "cnn").
        init: ``(key, dtype=jnp.float32) -> params``, a pytree of arrays.
        apply: ``(params, X) -> logits``; X of shape (n, in_dim), logits of shape (n, out_dim).
        description: one line, e.g. ``"mlp 3072-256-256-4 gelu"``.
        hvp_columns: the faster way to apply its Hessian to several vectors, ``"vmap"`` or ``"map"``
            (passed on to :func:`numeric.problem.from_jax`).
        out_shape: for outputs that are several predictions per example (sequence sorting:
            ``(length, vocab)``), how to read the flat logits and targets; None for one per example.
    """

    name: str
    init: Callable
    apply: Callable
    description: str = ""
    hvp_columns: str = "vmap"
    out_shape: tuple | None = None


def _dense_init(key, fan_in: int, fan_out: int, dtype) -> dict:
    w = jax.random.normal(key, (fan_in, fan_out), dtype=dtype) / math.sqrt(fan_in)
    return {"w": w, "b": jnp.zeros((fan_out,), dtype=dtype)}


def mlp(in_dim: int, widths: Sequence[int] = (256, 256), out_dim: int = 4, activation: str = "gelu") -> Model:
    """A fully connected network in_dim → widths… → out_dim, activation after every hidden layer.

    f(x) = W_L σ(… σ(W_1 x + b_1) …) + b_L, with weights ~ N(0, 1/fan_in) and zero biases.

    Args:
        in_dim: input features.
        widths: hidden layer sizes (may be empty: a linear model).
        out_dim: outputs (classes).
        activation: "gelu" (tanh approximation, JAX's default), "tanh" or "relu".
    """
    in_dim = _positive_int(in_dim, "in_dim")
    out_dim = _positive_int(out_dim, "out_dim")
    widths = tuple(_positive_int(w, "widths") for w in widths)
    act = ACTIVATIONS[_choice(activation, ACTIVATIONS, "activation")]
    sizes = (in_dim, *widths, out_dim)

    def init(key, dtype=jnp.float32):
        keys = jax.random.split(key, len(sizes) - 1)
        return tuple(_dense_init(k, a, b, dtype) for k, a, b in zip(keys, sizes[:-1], sizes[1:]))

    def apply(params, X):
        h = X
        for i, layer in enumerate(params):
            h = jnp.matmul(h, layer["w"], precision=_HI) + layer["b"]
            if i < len(params) - 1:
                h = act(h)
        return h

    return Model("mlp", init, apply, f"mlp {'-'.join(map(str, sizes))} {activation}")


def _avg_pool2(h):
    """2×2 average pooling with stride 2 on NHWC; an odd last row/column is dropped (floor)."""
    n, H, W, C = h.shape
    h = h[:, : H // 2 * 2, : W // 2 * 2, :]
    return h.reshape(n, H // 2, 2, W // 2, 2, C).mean(axis=(2, 4))


def _conv_same(z, kern):
    """Stride-1 "same" convolution of NHWC ``z`` with an HWIO kernel (odd sizes), as one matrix product.

    The patches of every output pixel (kh·kw·C_in values, in the kernel's (i, j, c) order) form the
    rows of a matrix multiplied by the kernel reshaped to (kh·kw·C_in, C_out). Same result as
    ``lax.conv_general_dilated(..., padding="SAME")``, but XLA's CPU backend runs convolutions (and
    their transposes) inside ``lax.scan``/``while_loop`` bodies up to 8× slower than at top level,
    and every process of a run steps inside a scan; matrix products do not have that problem.
    """
    kh, kw, cin, cout = kern.shape
    n, H, W, _ = z.shape
    zp = jnp.pad(z, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    patches = jnp.concatenate([zp[:, i:i + H, j:j + W, :] for i in range(kh) for j in range(kw)], axis=-1)
    out = jnp.matmul(patches.reshape(n * H * W, kh * kw * cin), kern.reshape(kh * kw * cin, cout), precision=_HI)
    return out.reshape(n, H, W, cout)


def cnn(in_shape: Sequence[int] = (32, 32, 3), channels: Sequence[int] = (16, 32), out_dim: int = 4,
        activation: str = "gelu") -> Model:
    """A small convolutional network: per stage conv 3×3 (same padding) → activation → 2×2 avg pool;
    then one dense layer to ``out_dim``.

    Input X is flat, shape (n, H·W·C), in CIFAR's layout (the C channel planes of H×W pixels one
    after the other): it is reshaped to (n, C, H, W) and transposed to NHWC. Pooling floors odd
    sizes, so after s stages the spatial size is H_s = ⌊H_{s-1}/2⌋. Kernels are HWIO with weights
    ~ N(0, 1/(9·C_in)); biases 0.

    Args:
        in_shape: (H, W, C) of one image.
        channels: output channels of each conv stage.
        out_dim: outputs (classes).
        activation: "gelu", "tanh" or "relu".
    """
    if len(tuple(in_shape)) != 3:
        raise _error(f"in_shape: expected (H, W, C), got {tuple(in_shape)!r}")
    H, W, C = (_positive_int(s, "in_shape") for s in in_shape)
    channels = tuple(_positive_int(c, "channels") for c in channels)
    out_dim = _positive_int(out_dim, "out_dim")
    act = ACTIVATIONS[_choice(activation, ACTIVATIONS, "activation")]
    h, w = H, W
    for _ in channels:
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise _error(f"in_shape: {H}x{W} is too small for {len(channels)} pooling stages")
    flat = h * w * (channels[-1] if channels else C)

    def init(key, dtype=jnp.float32):
        keys = jax.random.split(key, len(channels) + 1)
        params, cin = [], C
        for k, cout in zip(keys[:-1], channels):
            kern = jax.random.normal(k, (3, 3, cin, cout), dtype=dtype) / math.sqrt(9 * cin)
            params.append({"w": kern, "b": jnp.zeros((cout,), dtype=dtype)})
            cin = cout
        params.append(_dense_init(keys[-1], flat, out_dim, dtype))
        return tuple(params)

    def apply(params, X):
        z = jnp.transpose(jnp.reshape(X, (X.shape[0], C, H, W)), (0, 2, 3, 1))  # NCHW → NHWC
        for layer in params[:-1]:
            z = _avg_pool2(act(_conv_same(z, layer["w"]) + layer["b"]))
        z = jnp.reshape(z, (z.shape[0], -1))
        return jnp.matmul(z, params[-1]["w"], precision=_HI) + params[-1]["b"]

    desc = f"cnn {H}x{W}x{C} conv{list(channels)} -> {out_dim} {activation}"
    # batching HVP tangents multiplies the patch matrices: one vector after another is ~2.5× faster
    return Model("cnn", init, apply, desc, hvp_columns="map")


def _architecture(name: str) -> Callable[..., Model]:
    """A builder of :mod:`numeric.architectures` (imported when first used: it builds on this module)."""
    def build(*args, **kwargs):
        from . import architectures
        return getattr(architectures, name)(*args, **kwargs)
    build.__name__ = name
    return build


MODELS: dict[str, Callable[..., Model]] = {"mlp": mlp, "cnn": cnn, **{k: _architecture(k) for k in
                                                                    ("resnet", "vit", "transformer")}}


def _cnn_shape(in_dim: int) -> tuple[int, int, int]:
    """(H, W, C) for a flat input of in_dim features: square images with 3 (else 1) channels."""
    for c in (3, 1):
        side = int(round(np.sqrt(in_dim / c)))
        if in_dim % c == 0 and side * side * c == in_dim:
            return (side, side, c)
    raise _error(f"in_shape: cannot infer square images from in_dim={in_dim}; pass in_shape=(H, W, C)")


def make_model(name: str, in_dim: int, out_dim: int, **kw) -> Model:
    """The model called ``name`` ("mlp" or "cnn") for inputs of ``in_dim`` features.

    Extra keywords go to :func:`mlp` or :func:`cnn`. For the CNN, ``in_shape`` defaults to square
    images with 3 channels (else 1) whose size matches ``in_dim`` (3072 → (32, 32, 3)).

    Raises:
        DeriveInputError: naming ``model`` for an unknown name, or the offending argument.
    """
    _choice(name, MODELS, "model")
    in_dim = _positive_int(in_dim, "in_dim")
    if name == "mlp":
        return mlp(in_dim, out_dim=out_dim, **kw)
    if name == "transformer":   # in_dim tokens per sequence, out_dim = tokens × vocabulary
        if out_dim % in_dim:
            raise _error(f"--data: the transformer sorts sequences (--data sort); got {in_dim} inputs and "
                         f"{out_dim} outputs")
        return MODELS[name](length=in_dim, vocab=out_dim // in_dim, **kw)
    shape = tuple(kw.pop("in_shape", None) or _cnn_shape(in_dim))
    if int(np.prod(shape)) != in_dim:
        raise _error(f"in_shape: {shape} has {int(np.prod(shape))} features, but in_dim={in_dim}")
    return MODELS[name](shape, out_dim=out_dim, **kw)


def _onehot(Y, k: int, dtype):
    """One-hot targets: Y is either one-hot (n, k) already or integer labels (n,)."""
    Y = jnp.asarray(Y)
    if Y.ndim == 1:
        return jax.nn.one_hot(Y, k, dtype=dtype)
    return Y.astype(dtype)


def mse_loss(logits, Y):
    """Mean over examples of ½‖f(x) − y‖² (summed over outputs): the reference's MSE.

    L = (1/n) Σ_i ½ Σ_c (f_ic − y_ic)². Y is one-hot (n, k) or integer labels (n,).
    """
    Yh = _onehot(Y, logits.shape[-1], logits.dtype)
    return 0.5 * jnp.mean(jnp.sum((logits - Yh) ** 2, axis=-1))


def cross_entropy_loss(logits, Y):
    """Mean softmax cross-entropy: L = (1/n) Σ_i [logsumexp(f_i) − ⟨y_i, f_i⟩], stable for huge logits.

    Y is one-hot (n, k) or integer labels (n,).
    """
    Yh = _onehot(Y, logits.shape[-1], logits.dtype)
    lse = jax.nn.logsumexp(logits, axis=-1)
    return jnp.mean(lse - jnp.sum(Yh * logits, axis=-1))


LOSSES: dict[str, Callable] = {"mse": mse_loss, "ce": cross_entropy_loss}


def make_loss(model: Model, X, Y, loss: str = "mse") -> Callable:
    """The full-batch loss ``params -> scalar`` of ``model`` on (X, Y).

    Args:
        model: a :class:`Model`.
        X: inputs, shape (n, in_dim).
        Y: one-hot targets (n, out_dim) or integer labels (n,).
        loss: "mse" (½‖f − y‖² averaged over examples) or "ce" (softmax cross-entropy).

    Raises:
        DeriveInputError: naming ``--loss-fn`` for an unknown loss, ``X``/``Y`` for bad shapes.
    """
    fn = LOSSES[_choice(loss, LOSSES, "--loss-fn")]
    if not isinstance(model, Model):
        raise TypeError(f"model: expected a Model, got {type(model).__name__}")
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    if X.ndim != 2:
        raise _error(f"X: expected shape (n, features), got {X.shape}")
    if Y.ndim not in (1, 2) or Y.shape[0] != X.shape[0]:
        raise _error(f"Y: expected ({X.shape[0]},) labels or ({X.shape[0]}, classes) one-hot, got {Y.shape}")
    if model.out_shape is not None:   # several predictions per example: the loss of each, averaged
        shape = (X.shape[0], *model.out_shape)
        if Y.ndim != 2 or Y.shape[1] != math.prod(model.out_shape):
            raise _error(f"Y: expected ({X.shape[0]}, {math.prod(model.out_shape)}) one-hot rows, got {Y.shape}")
        Ys = Y.reshape(shape)
        return lambda params: fn(model.apply(params, X).reshape(shape), Ys)
    return lambda params: fn(model.apply(params, X), Y)


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree (arrays or ``jax.eval_shape`` structs)."""
    return int(sum(math.prod(np.shape(leaf)) if not hasattr(leaf, "shape") else math.prod(leaf.shape)
                   for leaf in jax.tree_util.tree_leaves(params)))
