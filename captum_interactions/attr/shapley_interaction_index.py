"""Captum-style Shapley Interaction Index (SII) for cross-modal feature pairs."""

from __future__ import annotations

from typing import Any, Literal, overload

import torch
from torch import Tensor

from captum_interactions.attr._pair_attribution import PairAttribution, symmetric_output
from captum_interactions.estimators.estimate import PairEstimate
from captum_interactions.estimators.exact import exact_sii
from captum_interactions.estimators.sii_adaptive import (
    check_adaptive_options,
    estimate_sii_adaptive,
)
from captum_interactions.estimators.sii_sampling import estimate_sii
from captum_interactions.modes import ControlVariate, Method, StderrScale, StopRule
from captum_interactions.perturbation.game import OutputSelector
from captum_interactions.perturbation.target import TargetType
from captum_interactions.players import PairsType
from captum_interactions.removal import BaselineInput, RemovalSpec
from captum_interactions.usage_log import log_usage
from captum_interactions.validation import (
    check_bool,
    check_choice,
    check_seed,
)


class ShapleyInteractionIndex(PairAttribution):
    r"""Shapley Interaction Index (Grabisch & Roubens, 1999) of feature pairs.

    For players i, j (tokens, patches or any Captum ``feature_mask`` group) of one example,

    .. math::
        SII(i, j) = \sum_{S \subseteq N \setminus \{i,j\}} \frac{|S|!\,(n-|S|-2)!}{(n-1)!}
        \big[v(S \cup \{i,j\}) - v(S \cup \{i\}) - v(S \cup \{j\}) + v(S)\big],

    where v(S) is the model output selected by ``target`` with only the players in S present.
    SII > 0 marks **synergy** (complementary evidence), SII < 0 substitution.

    The default ``method="sampling"`` is a stratified, paired, cross-fitted control-variate
    estimator: the border coalition sizes are enumerated exactly; the other sizes are sampled
    with a fixed allocation, each coalition together with its complement; a sparse surrogate
    game (screened pair terms plus 4- and 6-way terms of the leading players, as many as the
    data support), chosen and fitted on held-out replicates, is subtracted and its SII added
    back in closed form; and every evaluated coalition updates every pair through one matrix
    product. It is unbiased, reproducible from ``seed``,
    independent of ``perturbations_per_eval``, and reports standard errors from 16
    independent replicates. ``docs/estimators.md`` compares it with shapiq's approximators.
    ``method="exact"`` enumerates all 2^F coalitions (at most
    :data:`~captum_interactions.estimators.exact.MAX_EXACT_PLAYERS` players).

    Args:
        forward_func (Callable): the model or any function returning one row of outputs per
            input row, e.g. ``model(text_tokens, image_patches) -> logits``.

    Examples::

        >>> # model(text (B, T, H), image (B, P, H)) -> (B, C) logits
        >>> sii = ShapleyInteractionIndex(model)
        >>> values, stderr = sii.attribute((text, image), target=3, n_samples=2048,
        ...                                return_stderr=True, seed=0)
        >>> values.shape  # (B, T + P, T + P); token t and patch p are players t and T + p
        torch.Size([2, 24, 24])
    """

    kind = "SII"

    @overload
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = ...,
        target: TargetType = ...,
        additional_forward_args: Any = ...,
        feature_mask: Tensor | tuple[Tensor, ...] | None = ...,
        n_samples: int | Literal["auto"] = ...,
        perturbations_per_eval: int = ...,
        show_progress: bool = ...,
        *,
        pairs: PairsType = ...,
        method: Method = ...,
        removal: RemovalSpec = ...,
        output: OutputSelector = ...,
        return_stderr: Literal[False] = ...,
        seed: int = ...,
        control_variate: ControlVariate = ...,
        paired: bool = ...,
        shrinkage: bool = ...,
        target_stderr: float | None = ...,
        stderr_scale: StderrScale = ...,
        max_samples: int | None = ...,
        stop_when: StopRule = ...,
        top_k: int | None = ...,
        initial_samples: int | None = ...,
    ) -> Tensor: ...

    @overload
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = ...,
        target: TargetType = ...,
        additional_forward_args: Any = ...,
        feature_mask: Tensor | tuple[Tensor, ...] | None = ...,
        n_samples: int | Literal["auto"] = ...,
        perturbations_per_eval: int = ...,
        show_progress: bool = ...,
        *,
        pairs: PairsType = ...,
        method: Method = ...,
        removal: RemovalSpec = ...,
        output: OutputSelector = ...,
        return_stderr: Literal[True],
        seed: int = ...,
        control_variate: ControlVariate = ...,
        paired: bool = ...,
        shrinkage: bool = ...,
        target_stderr: float | None = ...,
        stderr_scale: StderrScale = ...,
        max_samples: int | None = ...,
        stop_when: StopRule = ...,
        top_k: int | None = ...,
        initial_samples: int | None = ...,
    ) -> tuple[Tensor, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = ...,
        target: TargetType = ...,
        additional_forward_args: Any = ...,
        feature_mask: Tensor | tuple[Tensor, ...] | None = ...,
        n_samples: int | Literal["auto"] = ...,
        perturbations_per_eval: int = ...,
        show_progress: bool = ...,
        *,
        pairs: PairsType = ...,
        method: Method = ...,
        removal: RemovalSpec = ...,
        output: OutputSelector = ...,
        return_stderr: bool,
        seed: int = ...,
        control_variate: ControlVariate = ...,
        paired: bool = ...,
        shrinkage: bool = ...,
        target_stderr: float | None = ...,
        stderr_scale: StderrScale = ...,
        max_samples: int | None = ...,
        stop_when: StopRule = ...,
        top_k: int | None = ...,
        initial_samples: int | None = ...,
    ) -> Tensor | tuple[Tensor, Tensor]: ...

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        baselines: BaselineInput = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        feature_mask: Tensor | tuple[Tensor, ...] | None = None,
        n_samples: int | Literal["auto"] = 2048,
        perturbations_per_eval: int = 256,
        show_progress: bool = False,
        *,
        pairs: PairsType = "cross",
        method: Method = "sampling",
        removal: RemovalSpec = "baseline",
        output: OutputSelector = None,
        return_stderr: bool = False,
        seed: int = 0,
        control_variate: ControlVariate = "auto",
        paired: bool = True,
        shrinkage: bool = False,
        target_stderr: float | None = None,
        stderr_scale: StderrScale = "absolute",
        max_samples: int | None = None,
        stop_when: StopRule = "stderr",
        top_k: int | None = None,
        initial_samples: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Estimate the SII of the requested pairs for every example.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): one tensor per modality, batch first, e.g.
                text tokens (B, T, H) and image patches (B, P, H). Each example is explained
                on its own.
            baselines (scalar, Tensor or tuple, optional): values that replace absent features
                (Captum semantics: a scalar, a tensor broadcastable to the input such as a
                per-modality mean token (H,), or one entry per input). Default: 0.
                Must be ``None`` with ``removal="presence"``.
            target (int, tuple, Tensor or list, optional): Captum ``TargetType``: the output
                index whose value is explained, for all examples or one per example. Needed
                whenever the forward output has more than one value per example.
            additional_forward_args (Any, optional): extra forward arguments after the inputs;
                tensors with a batch dimension are repeated for every coalition.
            feature_mask (Tensor or tuple[Tensor, ...], optional): integer player ids per input
                (Captum semantics; the same id in two inputs is one player). Default: each
                position along dim 1 of each input is one player, ids consecutive across
                inputs. For images or flat vectors see :func:`patch_grid_mask` and
                :func:`group_mask`.
            n_samples (int or "auto", optional): model rows (coalitions evaluated) per
                example; never exceeded. The sampler needs at least 3F. Ignored by
                ``method="exact"``, which evaluates 2^F. ``"auto"``: an adaptive budget that
                draws blocks of rows until ``stop_when`` holds for every example (see
                ``target_stderr`` ... ``initial_samples`` and ``docs/estimators.md``,
                "Adaptive budgets"). Default: 2048.
            perturbations_per_eval (int, optional): coalitions per example in one forward
                call (the forward batch holds ``perturbations_per_eval * B`` rows, as in
                Captum). Results do not depend on it. Default: 256.
            show_progress (bool, optional): show a progress bar. Default: False.
            pairs (str or Tensor, optional): ``"cross"`` (players in different inputs),
                ``"all"``, or a (P, 2) tensor of player ids. Default: ``"cross"``.
            method (str, optional): ``"sampling"`` or ``"exact"``. Default: ``"sampling"``.
            removal (str, rule or tuple, optional): ``"baseline"`` replaces absent
                features by ``baselines``; ``"presence"`` passes the inputs unchanged and
                calls ``forward_func(..., presence=(p_1, ..., p_M))`` with one boolean tensor
                (rows, T_m) per input, True where the token is present (the model drops the
                others, e.g. as attention key-padding); a tuple gives one rule per input:
                ``"baseline"`` or a :class:`~captum_interactions.MaskArgumentRemoval`, which
                edits a mask argument of the forward (e.g. text by ``attention_mask``, the
                image by its baseline). Default: ``"baseline"``.
            output (str or callable, optional): what to explain in the forward output: a key
                or attribute (``"logits_per_image"``) or a function of the output. Default: a
                tensor as is, ``logits`` of a dict or Hugging Face ``ModelOutput``, the first
                entry of a tuple.
            return_stderr (bool, optional): also return standard errors. Default: False.
            seed (int, optional): seed of the coalition sampler. Default: 0.
            control_variate (str, optional): ``"auto"`` (default), ``"sparse"``,
                ``"quadratic"``, ``"linear"``, ``"size"`` or ``"none"``: the surrogate
                subtracted before sampling. ``"sparse"`` (what ``"auto"`` picks with
                ``paired=True``): screened pair terms plus 4- and 6-way terms of the leading
                players, at most a third as many as the units that fit them; without
                pairing ``"auto"`` is quadratic up to 32 players, linear above. See
                ``docs/estimators.md``.
            paired (bool, optional): sample each coalition with its complement. Default: True.
            shrinkage (bool, optional): shrink the sampled correction towards the
                surrogate's SII by one factor per example (positive-part James-Stein): often
                much lower error at small budgets, but biased, and its standard errors are
                conservative bounds rather than calibrated. The default (False) is unbiased
                with calibrated standard errors. See ``docs/estimators.md``. Default: False.
            target_stderr (float, optional): with ``n_samples="auto"`` and
                ``stop_when="stderr"`` (needed there): stop once the largest standard error
                of each example's requested pairs is at most this. Default: None.
            stderr_scale (str, optional): ``"absolute"`` (``target_stderr`` in the units of
                the output) or ``"relative"`` (a fraction of each example's largest |SII|
                over the requested pairs). Default: ``"absolute"``.
            max_samples (int, optional): with ``n_samples="auto"``: the most rows per
                example; when the rule still fails there, a RuntimeWarning says so and the
                estimate at the cap is returned. At least 3F. Default: 65536.
            stop_when (str, optional): with ``n_samples="auto"``: ``"stderr"`` (the target
                above) or ``"topk"``: the ``top_k`` requested pairs of largest |SII| are the
                same at two consecutive checks and each beats every other pair by at least
                2 combined standard errors. Default: ``"stderr"``.
            top_k (int, optional): the ranking size for ``stop_when="topk"`` (needed
                there; below the number of requested pairs). Default: None.
            initial_samples (int, optional): with ``n_samples="auto"``: rows of the first
                block (at least 3F); the rule is checked at ``initial_samples``, then at
                twice as many rows, four times, ..., and at ``max_samples`` last. Default:
                max(3F, 256).

        Returns:
            *Tensor* or (*Tensor*, *Tensor*):
            - **values** (B, F, F): symmetric SII over player ids, zero diagonal, zero for
              pairs not requested, in the forward output's dtype.
            - **stderr** (B, F, F), only if ``return_stderr``: standard errors of the values
              (zero in exact mode).

            With ``n_samples="auto"``, :meth:`explain` also reports the rows used and whether
            the target was met, per example, in its ``settings``.
        """
        return_stderr = check_bool("return_stderr", return_stderr)
        estimate, requested, dtype = self._estimate(
            inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
            n_samples=n_samples, perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress, pairs=pairs, method=method, removal=removal,
            output=output, seed=seed, control_variate=control_variate, paired=paired,
            shrinkage=shrinkage,
            target_stderr=target_stderr, stderr_scale=stderr_scale, max_samples=max_samples,
            stop_when=stop_when, top_k=top_k, initial_samples=initial_samples)
        values = symmetric_output(estimate.values, requested, dtype)
        if return_stderr:
            return values, symmetric_output(estimate.stderr, requested, dtype)
        return values

    def _estimate(
        self,
        inputs: Tensor | tuple[Tensor, ...] | list[Tensor],
        *,
        baselines: BaselineInput,
        target: TargetType,
        additional_forward_args: Any,
        feature_mask: Tensor | tuple[Tensor, ...] | None,
        n_samples: int | Literal["auto"],
        perturbations_per_eval: int,
        show_progress: bool,
        pairs: PairsType,
        method: Method,
        removal: RemovalSpec,
        output: OutputSelector,
        seed: int,
        control_variate: ControlVariate,
        paired: bool,
        shrinkage: bool = False,
        target_stderr: float | None = None,
        stderr_scale: StderrScale = "absolute",
        max_samples: int | None = None,
        stop_when: StopRule = "stderr",
        top_k: int | None = None,
        initial_samples: int | None = None,
    ) -> tuple[PairEstimate, Tensor, torch.dtype]:
        """The raw estimate (pairs, and main effects from the same rows), the requested pairs
        and the output dtype; every argument validated first."""
        method = check_choice("method", method, Method)
        control_variate = check_choice("control_variate", control_variate, ControlVariate)
        fixed, adaptive = check_adaptive_options(
            n_samples, target_stderr=target_stderr, stderr_scale=stderr_scale,
            max_samples=max_samples, stop_when=stop_when, top_k=top_k,
            initial_samples=initial_samples, method=method)
        seed = check_seed(seed)
        paired = check_bool("paired", paired)
        shrinkage = check_bool("shrinkage", shrinkage)
        with self._game(
            inputs, baselines=baselines, target=target,
            additional_forward_args=additional_forward_args, feature_mask=feature_mask,
            pairs=pairs, removal=removal, perturbations_per_eval=perturbations_per_eval,
            show_progress=show_progress, output=output,
        ) as game:
            if method == "exact":
                estimate = exact_sii(game)
            elif adaptive is not None:
                estimate = estimate_sii_adaptive(game, adaptive, seed=seed,
                                                 control_variate=control_variate, paired=paired,
                                                 shrinkage=shrinkage)
            else:
                assert fixed is not None
                estimate = estimate_sii(game, fixed, seed=seed,
                                        control_variate=control_variate, paired=paired,
                                        shrinkage=shrinkage)
        return estimate, game.requested_pairs, game.output_dtype
