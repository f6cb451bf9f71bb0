"""Each term of the Eq. 24-26 objective against a hand computation."""

import math

import pytest
import torch

from ctdegradbench.model.losses import (classification_loss, ranking_loss, regression_loss,
                                        supervised_contrastive_loss, total_loss)

ATOL = 1e-6


def test_classification_loss_is_mean_negative_log_softmax():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = torch.tensor([0, 2])
    by_hand = []
    for row, y in zip(logits.tolist(), labels.tolist()):
        z = sum(math.exp(v) for v in row)
        by_hand.append(-math.log(math.exp(row[y]) / z))
    assert classification_loss(logits, labels).item() == pytest.approx(sum(by_hand) / 2, abs=ATOL)


def test_regression_loss_is_smooth_l1_with_beta():
    pred = torch.tensor([0.2, 3.0, 1.0])
    levels = torch.tensor([0, 0, 1])
    beta = 1.0
    # |d| = 0.2 (< beta: 0.5 d^2 / beta), 3 (>= beta: d - beta / 2), 0
    by_hand = (0.5 * 0.2 ** 2 / beta + (3.0 - 0.5 * beta) + 0.0) / 3
    assert regression_loss(pred, levels, beta).item() == pytest.approx(by_hand, abs=ATOL)


def test_ranking_loss_averages_hinge_over_ordered_pairs():
    pred = torch.tensor([0.0, 1.0, 0.3])
    levels = torch.tensor([0, 2, 1])
    margin = 0.5
    terms = []
    for i in range(3):
        for j in range(3):
            if levels[i] > levels[j]:
                terms.append(max(0.0, margin - (pred[i] - pred[j]).item()))
    assert len(terms) == 3
    assert ranking_loss(pred, levels, margin).item() == pytest.approx(sum(terms) / len(terms), abs=ATOL)


def test_ranking_loss_without_pairs_is_zero_with_graph():
    pred = torch.tensor([0.3, 0.7], requires_grad=True)
    loss = ranking_loss(pred, torch.tensor([1, 1]))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None


def test_supervised_contrastive_loss_matches_eq26_by_hand():
    torch.manual_seed(0)
    z = torch.randn(5, 4)
    groups = torch.tensor([0, 0, 1, 1, 2])     # sample 4 has no positive: not an anchor
    tau = 0.1
    zn = [v / v.norm() for v in z]
    total, anchors = 0.0, 0
    for i in range(5):
        positives = [p for p in range(5) if p != i and groups[p] == groups[i]]
        if not positives:
            continue
        denom = sum(math.exp((zn[i] @ zn[a]).item() / tau) for a in range(5) if a != i)
        total += -sum(math.log(math.exp((zn[i] @ zn[p]).item() / tau) / denom) for p in positives) / len(positives)
        anchors += 1
    assert anchors == 4
    assert supervised_contrastive_loss(z, groups, tau).item() == pytest.approx(total / anchors, rel=1e-5)


def test_total_loss_weights_terms_and_skips_zero_weights():
    torch.manual_seed(1)
    logits, severity, emb = torch.randn(6, 3), torch.randn(6), torch.randn(6, 5)
    labels, levels = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 0, 1, 3, 3])
    terms = total_loss(logits, severity, emb, labels, levels, lambda_reg=2.0, lambda_rank=0.3, lambda_con=0.05,
                       n_levels=4)
    expected = terms["cls"] + 2.0 * terms["reg"] + 0.3 * terms["rank"] + 0.05 * terms["con"]
    assert terms["loss"].item() == pytest.approx(expected.item(), abs=ATOL)
    assert terms["con"].item() > 0     # samples 4 and 5 share class 2 and level 3
    off = total_loss(logits, severity, emb, labels, levels, lambda_reg=0.0, lambda_rank=0.0, lambda_con=0.0)
    assert off["loss"].item() == pytest.approx(off["cls"].item(), abs=ATOL)
    assert off["reg"].item() == off["rank"].item() == off["con"].item() == 0.0
