"""Per-image statistics of the tasks without boxes (scsa_yolo.benchmark.tasks) against Ultralytics' own metrics."""

import numpy as np
import pytest
import torch
from ultralytics.utils.metrics import ClassifyMetrics, DepthMetrics, SemanticMetrics

from scsa_yolo.benchmark import tasks


def test_classify_statistics_sum_to_ultralytics_top1_top5():
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(40, 10, generator=generator), torch.randint(0, 10, (40,), generator=generator)
    top5 = logits.argsort(1, descending=True)[:, :5]
    rows = tasks.classify_statistics(top5, targets)
    reference = ClassifyMetrics()
    reference.process([targets[:25], targets[25:]], [top5[:25], top5[25:]])
    ours = tasks.classify_metric(rows.sum(0), len(rows))
    assert ours["top1"] == pytest.approx(reference.top1) and ours["top5"] == pytest.approx(reference.top5)
    assert 0 < ours["top1"] < ours["top5"] < 1  # a case where the two differ


def test_mcnemar_exact_counts_only_discordant_images():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    b = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    test = tasks.mcnemar_exact(a, b)
    assert (test.only_a, test.only_b) == (6, 0)
    assert test.p_value == pytest.approx(2 * 0.5**6)  # two-sided binomial, 6 of 6 discordant one way
    same = tasks.mcnemar_exact(a, a)  # A/A: nothing discordant, nothing claimed
    assert (same.only_a, same.only_b, same.p_value) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="same images"):
        tasks.mcnemar_exact(a, b[:5])


def test_semantic_confusions_sum_to_ultralytics_miou():
    names = {0: "sky", 1: "road", 2: "car"}
    generator = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 3, (5, 16, 16), generator=generator)
    targets[0, :4] = 255  # ignored pixels
    preds = torch.where(torch.rand(5, 16, 16, generator=generator) < 0.7, targets.clamp(max=2), 1)
    rows = tasks.semantic_statistics(preds, targets, names)
    assert rows.shape == (5, 9)
    reference = SemanticMetrics(names)
    reference.update_stats(preds, targets)
    reference.process()
    ours = tasks.semantic_metric(rows.sum(0), names)
    assert ours["miou"] == pytest.approx(reference.miou) and ours["pixel_accuracy"] == pytest.approx(
        reference.pixel_accuracy
    )
    half = tasks.semantic_metric(rows[:2].sum(0), names)["miou"]  # a resample is just another sum of rows
    assert half != pytest.approx(ours["miou"])


def test_depth_rows_average_to_ultralytics_delta1_and_abs_rel():
    generator = torch.Generator().manual_seed(2)
    targets = 1 + 9 * torch.rand(4, 1, 12, 12, generator=generator)
    preds = targets * (1 + 0.4 * torch.randn(4, 1, 12, 12, generator=generator)).clamp(min=0.2)
    targets[3] = 0  # no valid pixel: Ultralytics does not count this image
    rows = tasks.depth_statistics(preds, targets, align="none")
    assert rows[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    reference = DepthMetrics(align="none")
    reference.update_stats(preds, targets)
    reference.process()
    ours = tasks.depth_metric(rows.sum(0))
    assert ours["delta1"] == pytest.approx(reference.results_dict["metrics/delta1"])
    assert ours["abs_rel"] == pytest.approx(reference.results_dict["metrics/abs_rel"])
