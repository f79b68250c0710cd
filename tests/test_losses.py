import numpy as np
import pytest
import torch

from training.losses import (category_loss, ccc, ccc_loss, ccc_per_dimension,
                             modality_ccc_loss, pearson, regression_metrics, rmse)


def reference_ccc(x, y):
    """Lin (1989), written out independently with numpy's own estimators."""
    sxy = np.cov(x, y, bias=True)[0, 1]
    return 2 * sxy / (np.var(x) + np.var(y) + (np.mean(x) - np.mean(y)) ** 2)


@pytest.fixture
def series():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(400)
    return x, 0.7 * x + 0.3 * rng.standard_normal(400) + 0.2


def test_ccc_matches_numpy_reference(series):
    x, y = series
    assert ccc(x, y) == pytest.approx(reference_ccc(x, y), abs=1e-7)
    pred = torch.tensor(np.stack([x, y], -1)[None], dtype=torch.float64)
    target = torch.tensor(np.stack([y, x], -1)[None], dtype=torch.float64)
    torch_ccc = ccc_per_dimension(pred, target).numpy()
    assert torch_ccc == pytest.approx([reference_ccc(x, y)] * 2, abs=1e-6)


def test_ccc_extremes_and_sensitivity_to_scale_and_shift(series):
    x, _ = series
    x = x - x.mean()  # CCC(x, -x) = -1 holds for a zero-mean series
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-6)
    assert ccc(x, -x) == pytest.approx(-1.0, abs=1e-6)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)  # Pearson ignores scale and shift ...
    assert ccc(x, 2 * x) < 0.9  # ... CCC does not
    assert ccc(x, x + 1.0) < 0.7
    assert rmse(x, x + 0.5) == pytest.approx(0.5)


def test_loss_ignores_padded_steps(series):
    x, y = series
    pred = torch.tensor(np.stack([x, y], -1)[None], dtype=torch.float32)
    target = pred.clone()
    mask = torch.ones(1, len(x))
    mask[0, 300:] = 0
    target[0, 300:] = 50.0  # garbage in the padding must not matter
    assert ccc_loss(pred, target, mask).item() == pytest.approx(0.0, abs=1e-5)
    assert ccc_loss(pred, target).item() > 0.5


def test_regression_metrics_layout(series):
    x, y = series
    metrics = regression_metrics(np.stack([x, y], -1), np.stack([x, x], -1))
    assert metrics["n"] == 400
    assert metrics["arousal"]["ccc"] == pytest.approx(1.0, abs=1e-6)
    assert set(metrics["valence"]) == {"ccc", "pcc", "rmse"}
    assert metrics["valence"]["ccc"] < metrics["valence"]["pcc"] < 1.0


def test_voice_only_term_punishes_shrunken_predictions_without_a_face():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 100, 2, generator=generator) * 2 - 1
    step_mask = torch.ones(2, 100)
    face_mask = torch.ones(2, 100)
    face_mask[1] = 0.0  # the second sequence has no face
    prediction = target.clone()
    prediction[1] *= 0.2  # voice-only predictions shrunk towards the mean
    pooled = ccc_loss(prediction, target, step_mask)
    assert torch.isclose(modality_ccc_loss(prediction, target, step_mask, face_mask, 0.0), pooled)
    weighted = modality_ccc_loss(prediction, target, step_mask, face_mask, 1.0)
    voice_only_term = ccc_loss(prediction[1:], target[1:])
    assert torch.isclose(weighted, pooled + voice_only_term)
    assert voice_only_term > 0.3  # shrinking costs CCC even though the correlation is perfect


def test_per_modality_ccc_stops_faces_making_up_for_a_compressed_voice():
    # 100 faceless steps the voice cannot read (predicted at the mean), 20 face steps
    # predicted either exactly or spread 2.4x too far
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.standard_normal((1, 120, 2)), dtype=torch.float32)
    face_mask = torch.zeros(1, 120)
    face_mask[0, 100:] = 1.0
    step_mask = torch.ones(1, 120)
    exact, inflated = target.clone(), target.clone()
    exact[0, :100] = inflated[0, :100] = 0.0
    inflated[0, 100:] = 2.4 * target[0, 100:]
    pooled = [modality_ccc_loss(p, target, step_mask, face_mask) for p in (exact, inflated)]
    split = [modality_ccc_loss(p, target, step_mask, face_mask, per_modality=True)
             for p in (exact, inflated)]
    assert pooled[1] < pooled[0]  # the pooled CCC rewards the over-spread faces...
    assert split[0] < split[1]  # ...scoring each modality on its own does not
    assert torch.isclose(split[0], ccc_loss(exact[:, :100], target[:, :100]))  # faces exact


def test_category_loss_is_soft_cross_entropy_over_steps_with_known_classes():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 3.0, 0.0], [5.0, 5.0, 5.0]]])
    distribution = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    step_mask = torch.ones(1, 3)
    log_p = torch.log_softmax(logits, dim=-1)
    expected = (-(0.5 * log_p[0, 0, 0] + 0.5 * log_p[0, 0, 1]) - log_p[0, 1, 1]) / 2
    # the third step has no known class: it adds nothing and does not dilute the mean
    assert torch.isclose(category_loss(logits, distribution, step_mask), expected)
    padded = step_mask.clone()
    padded[0, 1] = 0.0  # padding is ignored too
    assert torch.isclose(category_loss(logits, distribution, padded), -(0.5 * log_p[0, 0, 0]
                                                                       + 0.5 * log_p[0, 0, 1]))
    assert category_loss(logits, torch.zeros_like(distribution), step_mask) == 0.0
    confident = torch.tensor([[[0.0, 9.0, 0.0]]])
    right, wrong = torch.tensor([[[0.0, 1.0, 0.0]]]), torch.tensor([[[1.0, 0.0, 0.0]]])
    assert (category_loss(confident, right, torch.ones(1, 1))
            < 0.01 < 9 < category_loss(confident, wrong, torch.ones(1, 1)))
