"""The modes of the public API, as ``Literal`` types.

Each alias is the single source of its allowed values: :func:`captum_interactions.validation.
check_choice` reads them with :func:`typing.get_args`, so the type a checker sees and the
values the library accepts can never drift apart.
"""

from __future__ import annotations

from typing import Literal

#: Which pairs are explained: players in different inputs, or every pair.
PairsMode = Literal["cross", "all"]
#: How an absent player leaves the input: replaced by a baseline, or dropped by the model.
RemovalMode = Literal["baseline", "presence"]
#: Estimate by sampling coalitions, or enumerate all 2^F of them.
Method = Literal["sampling", "exact"]
#: The coalitions a Redundancy Gap averages over: the SII distribution, or the full input.
Context = Literal["sampled", "full"]
#: The surrogate subtracted by the SII sampler ("auto" picks by pairing and players).
ControlVariate = Literal["auto", "sparse", "quadratic", "linear", "size", "none"]
#: A surrogate once "auto" is resolved.
Surrogate = Literal["sparse", "quadratic", "linear", "size", "none"]
#: What ends an adaptive budget (``n_samples="auto"``): the standard errors of the requested
#: pairs, or a stable top-k ranking of them.
StopRule = Literal["stderr", "topk"]
#: ``target_stderr`` as is, or as a fraction of each example's largest |SII|.
StderrScale = Literal["absolute", "relative"]
#: Alternative hypothesis of the pair-masking test.
Alternative = Literal["greater", "two-sided", "less"]
#: Null distribution of the pair-masking test.
PairedTest = Literal["exchange", "wilcoxon"]
#: How pair masking reads a change of the score: a drop (evidence for the target), a rise
#: (evidence against it, e.g. a signed similarity that removal raises), or either.
Direction = Literal["decrease", "increase", "absolute"]
#: Top-K% masking selects the top players of each input, or of all players.
TopKScope = Literal["modality", "global"]

__all__ = [
    "Alternative",
    "Context",
    "ControlVariate",
    "Direction",
    "Method",
    "PairedTest",
    "PairsMode",
    "RemovalMode",
    "StderrScale",
    "StopRule",
    "Surrogate",
    "TopKScope",
]
