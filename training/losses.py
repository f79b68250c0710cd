"""Concordance correlation (CCC) loss and the metrics reported for every model.

CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)  (Lin, 1989): 1 is perfect
agreement, and unlike Pearson it falls when predictions are shifted or scaled.
Padded steps (step_mask = 0) are excluded, as in End2You's masked loss.
"""
from __future__ import annotations

import numpy as np
import torch

from models.spec import OUTPUT_DIMENSIONS

EPSILON = 1e-8  # keeps the ratio finite for constant sequences


def ccc_per_dimension(prediction: torch.Tensor, target: torch.Tensor,
                      step_mask: torch.Tensor | None = None) -> torch.Tensor:
    """prediction, target [B,T,D]; step_mask [B,T] -> CCC per dimension [D] over valid steps."""
    if step_mask is None:
        step_mask = torch.ones(prediction.shape[:2], dtype=prediction.dtype,
                               device=prediction.device)
    weights = step_mask.to(prediction.dtype).unsqueeze(-1)  # [B,T,1]
    count = weights.sum().clamp_min(1.0)
    mean_p = (prediction * weights).sum(dim=(0, 1)) / count
    mean_t = (target * weights).sum(dim=(0, 1)) / count
    centred_p, centred_t = prediction - mean_p, target - mean_t
    var_p = (centred_p ** 2 * weights).sum(dim=(0, 1)) / count
    var_t = (centred_t ** 2 * weights).sum(dim=(0, 1)) / count
    covariance = (centred_p * centred_t * weights).sum(dim=(0, 1)) / count
    return 2 * covariance / (var_p + var_t + (mean_p - mean_t) ** 2 + EPSILON)


def ccc_loss(prediction: torch.Tensor, target: torch.Tensor,
             step_mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - CCC per dimension, averaged over arousal and valence."""
    return (1.0 - ccc_per_dimension(prediction, target, step_mask)).mean()


def modality_ccc_loss(prediction: torch.Tensor, target: torch.Tensor, step_mask: torch.Tensor,
                      face_mask: torch.Tensor, voice_only_weight: float = 0.0,
                      per_modality: bool = False) -> torch.Tensor:
    """ccc_loss over all steps, plus ``voice_only_weight`` x ccc_loss over the steps without
    a face.

    Pooled over a batch, steps with a face dominate the CCC (the face is the stronger cue),
    so the voice-only predictions can shrink towards the mean unpunished; the second term
    scores them on their own, keeping the model calibrated when no face is found.

    ``per_modality``: instead, ccc_loss over the steps with a face plus ccc_loss over the
    steps without. When the voice steps dominate (voice training with a few rehearsed
    faces), a pooled CCC asks the faces to make up the variance the voice cannot reach:
    with uninformative voice steps its optimum spreads face predictions by 1/sqrt(share
    of face steps), and valence on faces came out 2.4x too spread.
    """
    with_face = step_mask * (face_mask >= 0.5).to(step_mask.dtype)
    voice_only = step_mask * (face_mask < 0.5).to(step_mask.dtype)
    if per_modality:
        terms = [ccc_loss(prediction, target, mask) for mask in (with_face, voice_only)
                 if float(mask.sum()) >= 2]
        return sum(terms) if terms else ccc_loss(prediction, target, step_mask)
    loss = ccc_loss(prediction, target, step_mask)
    if voice_only_weight > 0 and float(voice_only.sum()) >= 2:
        loss = loss + voice_only_weight * ccc_loss(prediction, target, voice_only)
    return loss


def category_loss(logits: torch.Tensor, distribution: torch.Tensor,
                  step_mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits [B,T,K] against class distributions [B,T,K] (soft labels,
    e.g. FER+ vote shares), averaged over valid steps whose distribution is known (sums to
    more than 0); 0 when there are none."""
    known = step_mask * (distribution.sum(dim=-1) > 0).to(step_mask.dtype)
    per_step = -(distribution * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1)
    return (per_step * known).sum() / known.sum().clamp_min(1.0)


def ccc(prediction: np.ndarray, target: np.ndarray) -> float:
    """CCC of two 1-D series (numpy, float64)."""
    x, y = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    covariance = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * covariance / (x.var() + y.var() + (x.mean() - y.mean()) ** 2 + EPSILON))


def pearson(prediction: np.ndarray, target: np.ndarray) -> float:
    x, y = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    denominator = x.std() * y.std()
    return float(np.mean((x - x.mean()) * (y - y.mean())) / denominator) if denominator else 0.0


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
    x, y = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    return float(np.sqrt(np.mean((x - y) ** 2)))


def regression_metrics(prediction: np.ndarray, target: np.ndarray) -> dict:
    """[N,2] arousal/valence arrays -> {"arousal": {"ccc","pcc","rmse"}, "valence": {...}, "n"}."""
    metrics: dict = {"n": int(len(prediction))}
    for index, name in enumerate(OUTPUT_DIMENSIONS):
        metrics[name] = {"ccc": ccc(prediction[:, index], target[:, index]),
                         "pcc": pearson(prediction[:, index], target[:, index]),
                         "rmse": rmse(prediction[:, index], target[:, index])}
    return metrics
