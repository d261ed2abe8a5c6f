"""The paper's other architectures, small, in plain JAX: a ResNet, a vision Transformer (ViT) and a
Transformer for the sequence-sorting task (:func:`numeric.data.sort_task`).

Same conventions as :mod:`numeric.models`: pure ``init``/``apply`` over pytrees of arrays, weights
~ N(0, 1/fan_in) (the ViT's head: 0, as in the ViT paper), biases 0, LayerNorm scales 1 and offsets
0, every product at full precision.
Convolutions are the matrix-product form of :func:`numeric.models._conv_same` (fast inside scans).
No normalisation by batch statistics anywhere: the loss is a fixed function of the parameters, as
the central-flow theory needs.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from .models import _HI, ACTIVATIONS, Model, _avg_pool2, _choice, _conv_same, _dense_init, _error, _positive_int

__all__ = ["layer_norm", "attention", "resnet", "vit", "transformer"]


def layer_norm(x, p, eps: float = 1e-5):
    """LayerNorm over the last axis: (x − mean)/√(var + eps)·scale + offset."""
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * p["scale"] + p["offset"]


def _ln_init(dim: int, dtype) -> dict:
    return {"scale": jnp.ones((dim,), dtype), "offset": jnp.zeros((dim,), dtype)}


def _dense(x, p):
    return jnp.matmul(x, p["w"], precision=_HI) + p["b"]


def attention(x, p, heads: int):
    """Multi-head self-attention (no mask) on (n, T, d): softmax(QKᵀ/√(d/heads))V per head, then a projection."""
    n, T, d = x.shape
    hd = d // heads
    q, k, v = (_dense(x, p[name]).reshape(n, T, heads, hd) for name in ("q", "k", "v"))
    scores = jnp.einsum("nthd,nshd->nhts", q, k, precision=_HI) / math.sqrt(hd)
    out = jnp.einsum("nhts,nshd->nthd", jax.nn.softmax(scores, axis=-1), v, precision=_HI)
    return _dense(out.reshape(n, T, d), p["o"])


def _block_init(key, dim: int, hidden: int, dtype) -> dict:
    ks = jax.random.split(key, 6)
    return {"ln1": _ln_init(dim, dtype), "ln2": _ln_init(dim, dtype),
            **{name: _dense_init(k, dim, dim, dtype) for name, k in zip(("q", "k", "v", "o"), ks[:4])},
            "fc1": _dense_init(ks[4], dim, hidden, dtype), "fc2": _dense_init(ks[5], hidden, dim, dtype)}


def _block(x, p, heads: int, act):
    """A pre-LayerNorm Transformer block: x + attn(LN x), then x + MLP(LN x)."""
    x = x + attention(layer_norm(x, p["ln1"]), p, heads)
    return x + _dense(act(_dense(layer_norm(x, p["ln2"]), p["fc1"])), p["fc2"])


def _check_heads(dim: int, heads: int) -> tuple[int, int]:
    dim, heads = _positive_int(dim, "dim"), _positive_int(heads, "heads")
    if dim % heads:
        raise _error(f"heads: {heads} does not divide the width dim={dim}")
    return dim, heads


def resnet(in_shape: Sequence[int] = (8, 8, 1), channels: Sequence[int] = (8, 16), out_dim: int = 10,
           activation: str = "gelu") -> Model:
    """A small ResNet: a 3×3 stem conv to ``channels[0]``; per stage one residual block
    z + conv(σ(conv(σ(z)))) then a 3×3 conv to the next stage's channels and 2×2 average pooling;
    σ, global average pooling and a dense head."""
    if len(tuple(in_shape)) != 3:
        raise _error(f"in_shape: expected (H, W, C), got {tuple(in_shape)!r}")
    H, W, C = (_positive_int(s, "in_shape") for s in in_shape)
    channels = tuple(_positive_int(c, "channels") for c in channels)
    if not channels:
        raise _error("channels: a ResNet needs at least one stage")
    out_dim = _positive_int(out_dim, "out_dim")
    act = ACTIVATIONS[_choice(activation, ACTIVATIONS, "activation")]
    if H >> (len(channels) - 1) < 1 or W >> (len(channels) - 1) < 1:
        raise _error(f"in_shape: {H}x{W} is too small for {len(channels)} stages")

    def conv_init(k, cin, cout, dtype):
        return {"w": jax.random.normal(k, (3, 3, cin, cout), dtype) / math.sqrt(9 * cin), "b": jnp.zeros((cout,), dtype)}

    def init(key, dtype=jnp.float32):
        keys = iter(jax.random.split(key, 3 * len(channels) + 2))
        params = {"stem": conv_init(next(keys), C, channels[0], dtype), "stages": []}
        for i, c in enumerate(channels):
            stage = {"a": conv_init(next(keys), c, c, dtype), "b": conv_init(next(keys), c, c, dtype)}
            if i + 1 < len(channels):
                stage["down"] = conv_init(next(keys), c, channels[i + 1], dtype)
            params["stages"].append(stage)
        params["head"] = _dense_init(next(keys), channels[-1], out_dim, dtype)
        return params

    def conv(z, p):
        return _conv_same(z, p["w"]) + p["b"]

    def apply(params, X):
        z = jnp.transpose(jnp.reshape(X, (X.shape[0], C, H, W)), (0, 2, 3, 1))   # CIFAR layout → NHWC
        z = conv(z, params["stem"])
        for stage in params["stages"]:
            z = z + conv(act(conv(act(z), stage["a"])), stage["b"])
            if "down" in stage:
                z = _avg_pool2(conv(act(z), stage["down"]))
        return _dense(jnp.mean(act(z), axis=(1, 2)), params["head"])

    desc = f"resnet {H}x{W}x{C} stages{list(channels)} -> {out_dim} {activation}"
    return Model("resnet", init, apply, desc, hvp_columns="map")


def vit(in_shape: Sequence[int] = (8, 8, 1), patch: int = 2, dim: int = 16, depth: int = 2, heads: int = 2,
        hidden: int = 32, out_dim: int = 10, activation: str = "gelu") -> Model:
    """A small vision Transformer: non-overlapping ``patch``×``patch`` patches embedded linearly,
    learned position embeddings, ``depth`` pre-LayerNorm blocks, a final LayerNorm, mean pooling over
    patches and a dense head."""
    if len(tuple(in_shape)) != 3:
        raise _error(f"in_shape: expected (H, W, C), got {tuple(in_shape)!r}")
    H, W, C = (_positive_int(s, "in_shape") for s in in_shape)
    patch, depth, hidden = (_positive_int(v, k) for v, k in ((patch, "patch"), (depth, "depth"), (hidden, "hidden")))
    dim, heads = _check_heads(dim, heads)
    if H % patch or W % patch:
        raise _error(f"patch: {patch} does not divide the {H}x{W} image")
    out_dim = _positive_int(out_dim, "out_dim")
    act = ACTIVATIONS[_choice(activation, ACTIVATIONS, "activation")]
    T, P = (H // patch) * (W // patch), patch * patch * C

    def init(key, dtype=jnp.float32):
        ks = jax.random.split(key, depth + 3)
        # unit-scale position embeddings: a blank patch (digits have many) is not a near-zero vector,
        # which LayerNorm would blow up (the Hessian's top eigenvalue was ~10⁴ with 0.02-scale ones);
        # a zero head, as in the ViT paper: on the digits the top eigenvalue starts at 6, not 81 (which
        # put GD above the edge from step 0 at any η > 0.025), and sharpens progressively
        return {"embed": _dense_init(ks[0], P, dim, dtype), "pos": jax.random.normal(ks[1], (T, dim), dtype),
                "blocks": [_block_init(k, dim, hidden, dtype) for k in ks[2:2 + depth]],
                "ln": _ln_init(dim, dtype), "head": {"w": jnp.zeros((dim, out_dim), dtype),
                                                     "b": jnp.zeros((out_dim,), dtype)}}

    def apply(params, X):
        z = jnp.transpose(jnp.reshape(X, (X.shape[0], C, H, W)), (0, 2, 3, 1))
        n = z.shape[0]
        z = z.reshape(n, H // patch, patch, W // patch, patch, C).transpose(0, 1, 3, 2, 4, 5).reshape(n, T, P)
        z = _dense(z, params["embed"]) + params["pos"]
        for p in params["blocks"]:
            z = _block(z, p, heads, act)
        return _dense(jnp.mean(layer_norm(z, params["ln"]), axis=1), params["head"])

    desc = f"vit {H}x{W}x{C} patch {patch} dim {dim} depth {depth} heads {heads} -> {out_dim} {activation}"
    return Model("vit", init, apply, desc)


def transformer(length: int = 6, vocab: int = 6, dim: int = 16, depth: int = 2, heads: int = 2, hidden: int = 32,
                activation: str = "gelu") -> Model:
    """A small Transformer encoder for sequence sorting: tokens (X holds their ids as numbers, shape
    (n, length)) embedded with learned position embeddings, ``depth`` pre-LayerNorm blocks, a final
    LayerNorm and a per-position readout to ``vocab`` logits: output position i predicts the i-th
    smallest token. Its outputs are (n, length·vocab), read as ``out_shape = (length, vocab)``."""
    length, vocab, depth, hidden = (_positive_int(v, k) for v, k in
                                    ((length, "length"), (vocab, "vocab"), (depth, "depth"), (hidden, "hidden")))
    dim, heads = _check_heads(dim, heads)
    act = ACTIVATIONS[_choice(activation, ACTIVATIONS, "activation")]

    def init(key, dtype=jnp.float32):
        ks = jax.random.split(key, depth + 3)
        return {"embed": jax.random.normal(ks[0], (vocab, dim), dtype), "pos": jax.random.normal(ks[1], (length, dim), dtype),
                "blocks": [_block_init(k, dim, hidden, dtype) for k in ks[2:2 + depth]],
                "ln": _ln_init(dim, dtype), "head": _dense_init(ks[-1], dim, vocab, dtype)}

    def apply(params, X):
        tokens = jax.nn.one_hot(X.astype(jnp.int32), vocab, dtype=params["embed"].dtype)
        z = jnp.matmul(tokens, params["embed"], precision=_HI) + params["pos"]
        for p in params["blocks"]:
            z = _block(z, p, heads, act)
        return _dense(layer_norm(z, params["ln"]), params["head"]).reshape(X.shape[0], length * vocab)

    desc = f"transformer sort length {length} vocab {vocab} dim {dim} depth {depth} heads {heads} {activation}"
    return Model("transformer", init, apply, desc, out_shape=(length, vocab))
