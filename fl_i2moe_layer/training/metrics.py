"""Classification metrics per task: accuracy, macro / micro F1 and AUROC (torch + scipy only).

Inputs are logits: (N, C) for multiclass and multilabel, (N, 1) or (N,) for binary. AUROC is
the Mann-Whitney statistic (ties count one half), averaged over the classes (one-vs-rest) or
labels that have both positive and negative examples; NaN when none has.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

METRICS = ("accuracy", "macro_f1", "micro_f1", "auroc")


def binary_auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of one score vector against 0/1 labels (NaN if one class)."""
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positives.astype(bool)].sum() - n_pos * (n_pos + 1) / 2)
                 / (n_pos * n_neg))


def _f1(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    denom = 2 * tp + fp + fn
    # A class neither present nor predicted scores 0 (scikit-learn's zero_division=0), so
    # macro F1 is comparable with the numbers papers report.
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))


def _indicator_metrics(pred: Tensor, truth: Tensor, scores: Tensor) -> dict[str, float]:
    """pred, truth (N, K) 0/1 indicators; scores (N, K) for AUROC."""
    tp = (pred * truth).sum(0)
    fp = (pred * (1 - truth)).sum(0)
    fn = ((1 - pred) * truth).sum(0)
    aucs = [binary_auroc(scores[:, k].numpy(), truth[:, k].numpy())
            for k in range(truth.shape[1])]
    valid = [a for a in aucs if not math.isnan(a)]
    return {
        "macro_f1": float(_f1(tp, fp, fn).mean()),
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "auroc": float(np.mean(valid)) if valid else math.nan,
    }


def classification_metrics(logits: Tensor, labels: Tensor, task: str) -> dict[str, float]:
    """accuracy, macro_f1, micro_f1 and auroc of ``logits`` against ``labels``.

    * multiclass: argmax accuracy; F1 over the C classes (micro F1 = accuracy); one-vs-rest
      AUROC on softmax probabilities.
    * multilabel: threshold 0 on logits (probability 0.5); accuracy is the exact-match ratio;
      F1 and AUROC over the labels.
    * binary: threshold 0; F1 over the two classes; AUROC of the logit.

    Examples::

        >>> classification_metrics(torch.tensor([[2.0, 0.1], [0.3, 1.0]]),
        ...                        torch.tensor([0, 1]), "multiclass")["accuracy"]
        1.0
    """
    logits = logits.detach().float().cpu()
    labels = labels.detach().cpu()
    if task == "multiclass":
        c = logits.shape[1]
        pred = logits.argmax(1)
        out = _indicator_metrics(
            torch.nn.functional.one_hot(pred, c).float(),
            torch.nn.functional.one_hot(labels.long(), c).float(), logits.softmax(1),
        )
        out["accuracy"] = float((pred == labels).float().mean())
        return out
    if task == "multilabel":
        truth = labels.float()
        pred = (logits > 0).float()
        out = _indicator_metrics(pred, truth, logits)
        out["accuracy"] = float((pred == truth).all(1).float().mean())
        return out
    if task == "binary":
        score = logits.reshape(-1)
        truth = labels.reshape(-1).float()
        pred = (score > 0).float()
        two = torch.stack([1 - pred, pred], 1)
        two_truth = torch.stack([1 - truth, truth], 1)
        out = _indicator_metrics(two, two_truth, torch.stack([-score, score], 1))
        out["auroc"] = binary_auroc(score.numpy(), truth.numpy())
        out["accuracy"] = float((pred == truth).float().mean())
        return out
    raise ValueError(f"task must be multiclass, multilabel or binary, got {task!r}.")
