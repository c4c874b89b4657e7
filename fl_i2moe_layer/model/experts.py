"""E expert Transformers evaluated together: every weight carries a leading expert dimension.

One expert is a small pre-LN Transformer over the concatenated token sequence of all
modalities (positional and modality embeddings, key-padding mask), followed by masked mean
pooling per modality, a latent z of size M·H and a linear head (docs/design.md §5). Storing the
E experts' weights stacked lets a whole layer of all experts run as one batched matmul
(``torch.baddbmm``) instead of E small ones: the training forward is a handful of large
kernels whatever the number of experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ExpertOutputs:
    """Outputs of the stacked experts for N rows.

    Attributes:
        latents: (E, N, M·H) pooled latents, modality-major.
        logits: (E, N, C) head outputs.
        attentions: per layer (E, N, heads, L, L) attention probabilities, or None.
    """

    latents: Tensor
    logits: Tensor
    attentions: list[Tensor] | None


def _linear_init(weight: Tensor, fan_in: int) -> None:
    # Same scale as nn.Linear's default, drawn independently for every expert.
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)


def attention_bias(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, L) keep mask -> (N, 1, 1, L) additive bias ((E, N, L) -> (E, N, 1, 1, L) for one
    mask per expert). A finite large negative value (not -inf) keeps rows whose tokens are all
    absent finite: their softmax is uniform instead of NaN, and those rows are ignored by the
    masked pooling anyway."""
    neg = torch.finfo(dtype).min / 2
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill(~keep, neg)[..., None, None, :]


def modality_ids(lengths: list[int], device: torch.device) -> Tensor:
    """(L,) the modality index of every position of the concatenated sequence."""
    return torch.cat([torch.full((t,), i, device=device) for i, t in enumerate(lengths)])


def expert_keep(keep: Tensor, lengths: list[int], num_experts: int) -> Tensor:
    """(N, L) keep mask -> (E, N, L): uniqueness expert i (i < M) keeps only the tokens of
    modality i, the other experts keep every present token. A uniqueness expert thus never
    sees another modality: its output is exactly unchanged when another modality's tokens
    change (attention gives masked keys weight 0, pooling gives them weight 0)."""
    m = len(lengths)
    mod = modality_ids(lengths, keep.device)  # (L,)
    experts = torch.arange(num_experts, device=keep.device).unsqueeze(1)  # (E, 1)
    member = (mod.unsqueeze(0) == experts) | (experts >= m)  # (E, L)
    return keep.unsqueeze(0) & member.unsqueeze(1)


class StackedExperts(nn.Module):
    """``num_experts`` expert Transformers with stacked parameters.

    Args:
        num_experts: E.
        num_modalities: M.
        hidden_dim: H, the token width of every modality.
        num_classes: C, outputs of each expert's head.
        num_layers, num_heads, ffn_dim, dropout, max_len: Transformer shape.
    """

    def __init__(self, num_experts: int, num_modalities: int, hidden_dim: int, num_classes: int,
                 num_layers: int, num_heads: int, ffn_dim: int, dropout: float,
                 max_len: int) -> None:
        super().__init__()
        e, h, f, m = num_experts, hidden_dim, ffn_dim, num_modalities
        self.num_experts, self.num_modalities, self.hidden_dim = e, m, h
        self.num_layers, self.num_heads, self.dropout = num_layers, num_heads, dropout
        self.position = nn.Parameter(torch.randn(e, max_len, h) * 0.02)
        self.modality = nn.Parameter(torch.randn(e, m, h) * 0.02)

        def param(*shape: int, fill: float | None = None, fan_in: int | None = None) -> Tensor:
            t = torch.empty(*shape)
            if fill is not None:
                t.fill_(fill)
            else:
                assert fan_in is not None
                _linear_init(t, fan_in)
            return nn.Parameter(t)

        n = num_layers
        # Layer parameters are stacked (layers, experts, ...) so that a layer is one slice.
        self.ln1_w, self.ln1_b = param(n, e, h, fill=1.0), param(n, e, h, fill=0.0)
        self.qkv_w, self.qkv_b = param(n, e, h, 3 * h, fan_in=h), param(n, e, 3 * h, fill=0.0)
        self.out_w, self.out_b = param(n, e, h, h, fan_in=h), param(n, e, h, fill=0.0)
        self.ln2_w, self.ln2_b = param(n, e, h, fill=1.0), param(n, e, h, fill=0.0)
        self.ff1_w, self.ff1_b = param(n, e, h, f, fan_in=h), param(n, e, f, fill=0.0)
        self.ff2_w, self.ff2_b = param(n, e, f, h, fan_in=f), param(n, e, h, fill=0.0)
        self.lnf_w, self.lnf_b = param(e, h, fill=1.0), param(e, h, fill=0.0)
        self.head_w = param(e, m * h, num_classes, fan_in=m * h)
        self.head_b = param(e, num_classes, fill=0.0)

    # -- small helpers on (E, N, L, D) tensors -------------------------------------------------
    @staticmethod
    def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        y = F.layer_norm(x, x.shape[-1:])
        return torch.addcmul(bias[:, None, None, :], y, weight[:, None, None, :])

    @staticmethod
    def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        e, n, l_, d = x.shape
        out = torch.baddbmm(bias[:, None, :], x.reshape(e, n * l_, d), weight)
        return out.view(e, n, l_, -1)

    def _dropout(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, self.training) if self.dropout > 0 else x

    def _attention(self, x: Tensor, layer: int, bias: Tensor,
                   keep_probs: bool) -> tuple[Tensor, Tensor | None]:
        e, n, l_, h = x.shape
        heads = self.num_heads
        d = h // heads
        qkv = self._linear(x, self.qkv_w[layer], self.qkv_b[layer])
        # unbind (not qkv[0], qkv[1], qkv[2]): its backward is one stack instead of three
        # zero-filled copies of the whole tensor.
        q, k, v = qkv.view(e * n, l_, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        full_bias = bias.expand(e, n, 1, 1, l_).reshape(e * n, 1, 1, l_)
        probs = None
        # Fused attention pays off on GPUs; on CPU, for these short sequences, PyTorch's
        # flash kernel (and its backward) measured slower than two batched matmuls.
        if keep_probs or not x.is_cuda:
            # Explanations also need the probabilities themselves (attention × gradient).
            rows = e * n * heads
            key_bias = full_bias.expand(e * n, heads, 1, l_).reshape(rows, 1, l_)
            # One kernel for scale, product and key-padding bias.
            scores = torch.baddbmm(key_bias, q.reshape(rows, l_, d),
                                   k.reshape(rows, l_, d).transpose(1, 2),
                                   alpha=1.0 / math.sqrt(d))
            # The returned tensor must be the one the output is computed from (not a view
            # made afterwards), so that gradients with respect to it exist.
            probs = scores.softmax(-1).view(e, n, heads, l_, l_)
            ctx = self._dropout(probs.view(e * n, heads, l_, l_)) @ v
        else:
            ctx = F.scaled_dot_product_attention(
                q, k, v, attn_mask=full_bias.to(q.dtype),
                dropout_p=self.dropout if self.training else 0.0,
            )
        ctx = ctx.transpose(1, 2).reshape(e, n, l_, h)
        return self._linear(ctx, self.out_w[layer], self.out_b[layer]), (
            probs if keep_probs else None)

    def forward(self, tokens: Tensor, keep: Tensor, lengths: list[int], *,
                return_attentions: bool = False, head_rows: int | None = None) -> ExpertOutputs:
        """Run all experts on the same rows.

        Args:
            tokens: (N, L, H) concatenated token sequences (modality-major, lengths ``lengths``).
            keep: (N, L) bool, True where a token is real and present, or (E, N, L): one mask
                per expert (see :func:`expert_keep`).
            lengths: tokens per modality, summing to L.
            return_attentions: keep the attention probabilities (explicit attention).
            head_rows: apply the heads to the first ``head_rows`` rows only (the variant rows of
                training need latents, not logits).
        """
        device = tokens.device
        pos = torch.cat([torch.arange(t, device=device) for t in lengths])
        mod = modality_ids(lengths, device)
        emb = self.position[:, pos] + self.modality[:, mod]  # (E, L, H)
        x = self._dropout(tokens.unsqueeze(0) + emb.unsqueeze(1))  # (E, N, L, H)
        bias = attention_bias(keep, x.dtype)
        attentions: list[Tensor] = []
        for layer in range(self.num_layers):
            attn_in = self._layer_norm(x, self.ln1_w[layer], self.ln1_b[layer])
            attn_out, probs = self._attention(attn_in, layer, bias, return_attentions)
            if probs is not None:
                attentions.append(probs)
            x = x + self._dropout(attn_out)
            ff = self._layer_norm(x, self.ln2_w[layer], self.ln2_b[layer])
            ff = F.gelu(self._linear(ff, self.ff1_w[layer], self.ff1_b[layer]))
            x = x + self._dropout(self._linear(self._dropout(ff), self.ff2_w[layer],
                                               self.ff2_b[layer]))
        x = self._layer_norm(x, self.lnf_w, self.lnf_b)
        latents = pooled_latents(x, keep, lengths)  # (E, N, M·H)
        rows = latents if head_rows is None else latents[:, :head_rows]
        logits = torch.baddbmm(self.head_b[:, None, :], rows, self.head_w)
        return ExpertOutputs(latents, logits, attentions if return_attentions else None)


def pooling_weights(keep: Tensor, lengths: list[int], dtype: torch.dtype) -> Tensor:
    """(..., L) keep mask -> (..., L, M) weights of a masked mean per modality; a modality
    with no present token gets all-zero weights (its pooled vector is 0, never 0/0)."""
    mod = modality_ids(lengths, keep.device)
    member = F.one_hot(mod, len(lengths)).to(dtype)  # (L, M)
    w = keep.to(dtype).unsqueeze(-1) * member  # (..., L, M)
    return w / w.sum(-2, keepdim=True).clamp_min(1.0)


def pooled_latents(x: Tensor, keep: Tensor, lengths: list[int]) -> Tensor:
    """(E, N, L, H) -> (E, N, M·H): masked mean per modality, concatenated modality-major;
    ``keep`` is (N, L), or (E, N, L) for one mask per expert."""
    w = pooling_weights(keep, lengths, x.dtype).transpose(-1, -2)  # (N or E·N, M, L)
    if w.dim() == 3:
        w = w.unsqueeze(0)
    pooled = w @ x  # (E, N, M, H), no copy of x
    return pooled.reshape(x.shape[0], x.shape[1], -1)
