"""SeSpeCT's training objective (paper Section 3.4, Eq. 24-26), one function per term.

Self-contained (imports only ``torch``): copied next to saved checkpoints with the modeling file.

Conventions: ``levels`` are integer severity levels ``0..3`` used as regression targets in
level units; ``severity`` is the predicted scalar ``s_hat`` (Eq. 23) in the same units.

Chosen constants (the paper fixes only ``lambda_rank = 0.3`` and ``lambda_con = 0.05``):

- ``lambda_reg = 1``: cross-entropy over ten classes starts near ln 10 = 2.3 and SmoothL1 on
  levels 0..3 near 1-1.5, so equal weights keep the two main tasks of the same order, as the
  paper's "classification and regression terms provide the main supervision" asks.
- SmoothL1 ``beta = 1`` level: quadratic (MSE-like) within one level of the target, linear
  beyond, so a sample predicted several levels off does not dominate a batch.
- ranking margin ``m = 0.5`` level: two samples one level apart must be predicted at least half
  a level apart, which is exactly what rounding to the nearest level needs to order them.
- contrastive temperature ``tau = 0.1`` on L2-normalised embeddings: the value of Khosla et
  al.'s supervised contrastive study (0.1 for SupCon), between too flat (1) and too peaked (0.01).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``L_cls``: mean cross-entropy of ``logits`` (B, C) against class indices ``labels`` (B,)."""
    return F.cross_entropy(logits, labels)


def regression_loss(severity: torch.Tensor, levels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """``L_reg = SmoothL1(s_hat, s)`` (Eq. 24), mean over the batch.

    Per sample, with ``d = |s_hat - s|``: ``0.5 d^2 / beta`` if ``d < beta`` else ``d - 0.5 beta``.
    """
    return F.smooth_l1_loss(severity, levels.to(severity.dtype), beta=beta)


def ranking_loss(severity: torch.Tensor, levels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """``L_rank`` of Eq. 25: mean of ``max(0, m - (s_hat_i - s_hat_j))`` over all ordered pairs
    ``(i, j)`` of the batch with ``s_i > s_j``. A batch without such a pair gives 0 (with a graph)."""
    diff_true = levels[:, None] - levels[None, :]
    pairs = diff_true > 0
    if not bool(pairs.any()):
        return severity.sum() * 0.0
    diff_pred = severity[:, None] - severity[None, :]
    return torch.clamp(margin - diff_pred[pairs], min=0.0).mean()


def supervised_contrastive_loss(embeddings: torch.Tensor, groups: torch.Tensor,
                                temperature: float = 0.1) -> torch.Tensor:
    """``L_con`` of Eq. 26 on the L2-normalised fused embeddings.

    ``groups`` (B,) holds one integer per sample; samples with equal values are positives
    (SeSpeCT uses class * (max_level + 1) + level: same degradation class and severity level).
    For each anchor ``i`` with at least one positive (the set ``V``)::

        l_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) )

    and ``L_con`` is the mean of ``l_i`` over ``V`` (0, with a graph, when ``V`` is empty).
    """
    z = F.normalize(embeddings, dim=1)
    n = z.shape[0]
    sim = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (groups[:, None] == groups[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return embeddings.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positives, 0.0).sum(dim=1)[anchors] / n_pos[anchors])
    return per_anchor.mean()


def total_loss(logits, severity, embeddings, labels, levels, *, lambda_reg=1.0, lambda_rank=0.3, lambda_con=0.05,
               rank_margin=0.5, temperature=0.1, smooth_l1_beta=1.0, n_levels=4) -> dict:
    """Eq. 24: ``L = L_cls + lambda_reg L_reg + lambda_rank L_rank + lambda_con L_con``.

    Returns a dict with ``loss`` (the total) and each term (``cls``, ``reg``, ``rank``, ``con``,
    unweighted). A term whose weight is 0 is not computed (reported as 0): that is how the loss
    ablations switch a term off.
    """
    zero = logits.sum() * 0.0
    terms = {"cls": classification_loss(logits, labels)}
    terms["reg"] = regression_loss(severity, levels, smooth_l1_beta) if lambda_reg > 0 else zero
    terms["rank"] = ranking_loss(severity, levels, rank_margin) if lambda_rank > 0 else zero
    terms["con"] = (supervised_contrastive_loss(embeddings, labels * n_levels + levels, temperature)
                    if lambda_con > 0 else zero)
    terms["loss"] = terms["cls"] + lambda_reg * terms["reg"] + lambda_rank * terms["rank"] + lambda_con * terms["con"]
    return terms
