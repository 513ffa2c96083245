"""Paired bootstrap statistics on synthetic per-image matching records (no training).

The oracle for every recomputed AP is Ultralytics' own ``ap_per_class`` on the concatenated records of the drawn
images, duplicates included.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from ultralytics.utils.metrics import ap_per_class

from scsa_yolo.benchmark.measure import ratio_interval
from scsa_yolo.benchmark.report import dropped_resample_notes, markdown_report, verdict
from scsa_yolo.benchmark.stats import (
    Comparison,
    ImageStats,
    _Curves,
    average_precision,
    image_resamples,
    load_image_stats,
    paired_comparisons,
    save_image_stats,
    sign_flip_p_value,
)


def synthetic_stats(seed, images=30, preds=25, labels=8, classes=3, skill=0.6, ignore=0.0):
    """Per-image records where higher-confidence predictions are more often correct (a detector-like PR curve).

    As with real matching, an image has at most as many correct predictions of a class (per IoU threshold) as labels.
    """
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(images):
        conf = rng.random(preds).astype(np.float32)
        pred_cls = rng.integers(0, classes, preds)
        target_cls = rng.integers(0, classes, labels)
        correct = rng.random((preds, 1)) < skill * conf[:, None]
        tp = correct & (rng.random((preds, 10)) < np.linspace(1.0, 0.3, 10))
        for c in range(classes):
            for t in range(10):
                tp[np.flatnonzero(tp[:, t] & (pred_cls == c))[np.sum(target_cls == c) :], t] = False
        counted = rng.random((preds, 10)) >= ignore
        records.append(
            {"tp": tp, "counted": counted | tp, "conf": conf, "pred_cls": pred_cls, "target_cls": target_cls}
        )
    return ImageStats.from_images([f"{i}.jpg" for i in range(images)], records)


def degraded(stats, keep=0.5, seed=0):
    """The same predictions with part of the correct ones turned wrong: a known, large loss of AP."""
    rng = np.random.default_rng(seed)
    lost = rng.random(len(stats.conf)) > keep
    return ImageStats(**{**stats.__dict__, "tp": stats.tp & ~lost[:, None]})


def drawn(stats, counts):
    """Concatenate the records of the drawn images (an image drawn twice appears twice), Ultralytics' input form."""
    order = np.repeat(np.arange(len(counts)), counts)
    preds = np.concatenate([np.flatnonzero(stats.pred_image == i) for i in order])
    labels = np.concatenate([np.flatnonzero(stats.target_image == i) for i in order])
    return preds, labels


def ultralytics_map(stats, preds, labels, iou_column=None):
    tp = stats.tp[preds] if iou_column is None else np.repeat(stats.tp[preds, iou_column, None], 10, 1)
    ap = ap_per_class(tp, stats.conf[preds], stats.pred_cls[preds], stats.target_cls[labels])[5]
    return ap[:, 0].mean(), ap.mean()


def test_recomputed_ap_equals_ultralytics_on_full_and_resampled_sets():
    stats = synthetic_stats(0)
    everything = np.arange(len(stats.conf)), np.arange(len(stats.target_cls))
    mine = average_precision(stats)
    assert (mine["map50"], mine["map50_95"]) == pytest.approx(ultralytics_map(stats, *everything), abs=1e-12)
    assert mine["map50_95"] > 0.05  # a real curve, not the trivial zero
    for counts in image_resamples(len(stats.images), 4, seed=3):
        mine = average_precision(stats, counts)
        assert (mine["map50"], mine["map50_95"]) == pytest.approx(
            ultralytics_map(stats, *drawn(stats, counts)), abs=1e-12
        )


def test_predictions_ignored_at_a_threshold_add_no_point_there():
    stats = synthetic_stats(1, ignore=0.3)  # a size bin: some predictions are not counted at some thresholds
    counts = image_resamples(len(stats.images), 1, seed=5)[0]
    preds, labels = drawn(stats, counts)
    for column in (0, 5, 9):
        kept = preds[stats.counted[preds, column]]
        single = ImageStats(
            **{
                **stats.__dict__,
                "tp": np.repeat(stats.tp[:, column, None], 10, 1),
                "counted": np.repeat(stats.counted[:, column, None], 10, 1),
            }
        )
        assert average_precision(single, counts)["map50"] == pytest.approx(
            ultralytics_map(stats, kept, labels, column)[0], abs=1e-12
        )


def test_size_bin_without_labels_is_nan_not_zero(tmp_path):
    stats = synthetic_stats(2)
    empty = ImageStats(**{**stats.__dict__, "target_cls": np.zeros(0, np.int32), "target_image": np.zeros(0, np.int32)})
    assert all(math.isnan(value) for value in average_precision(empty).values())
    save_image_stats(tmp_path / "stats.npz", {"all": stats, "small": empty})
    loaded = load_image_stats(tmp_path / "stats.npz")
    assert loaded["all"].images == stats.images and np.array_equal(loaded["all"].tp, stats.tp)
    comparison = paired_comparisons(
        {"a": [{"all": stats, "small": empty}], "b": [{"all": stats, "small": empty}]}, resamples=50
    )
    small = next(c for c in comparison if c.metric == "ap_small")
    assert math.isnan(small.delta) and "undefined" in verdict(small)


@pytest.fixture(scope="module")
def three_seed_runs():
    """A reference, an identical twin and a degraded copy, three seeds each (seeds differ in their records)."""
    reference = [{"all": synthetic_stats(s), "small": synthetic_stats(10 + s, labels=3)} for s in range(3)]
    twin = [{name: ImageStats(**stats.__dict__) for name, stats in bins.items()} for bins in reference]
    worse = [{name: degraded(stats, seed=s) for name, stats in bins.items()} for s, bins in enumerate(reference)]
    return {"reference": reference, "twin": twin, "worse": worse}


@pytest.fixture(scope="module")
def three_seed_comparisons(three_seed_runs):
    return paired_comparisons(three_seed_runs, resamples=200, seed=1)


def test_identical_twin_gives_zero_and_claims_nothing(three_seed_comparisons):
    for c in (c for c in three_seed_comparisons if c.model == "twin"):
        assert c.delta == 0 and c.ci_low == 0 == c.ci_high and not c.excludes_zero and c.p_value == 1.0
        assert "not distinguishable from noise" in verdict(c)


def test_known_large_difference_excludes_zero_and_intervals_hold_their_estimate(three_seed_comparisons):
    comparisons = three_seed_comparisons
    for c in comparisons:
        assert c.ci_low <= c.delta <= c.ci_high, c
    worse = {c.metric: c for c in comparisons if c.model == "worse"}
    for metric in ("map50_95", "map50", "ap_small"):
        assert worse[metric].ci_high < 0 and worse[metric].excludes_zero, worse[metric]
    assert worse["map50_95"].p_value == 0.25  # 3 seeds, all worse: the smallest p a sign-flip test can give
    assert "lower than reference" in verdict(worse["map50_95"])
    # the bootstrap interval excludes 0, but 3 seeds cannot make the exact test over seeds significant: say so
    assert "not confirmed across seeds" in verdict(worse["map50_95"]) and "cannot give p below 0.25" in verdict(
        worse["map50_95"]
    )
    assert worse["map50_95"].seeds == 3 and worse["map50_95"].images == 30


def test_interval_is_reproducible_with_its_seed_and_moves_with_another(three_seed_runs):
    single = {name: runs[:1] for name, runs in three_seed_runs.items() if name != "twin"}
    first = paired_comparisons(single, resamples=100, seed=7)
    assert first == paired_comparisons(single, resamples=100, seed=7)
    other = paired_comparisons(single, resamples=100, seed=8)
    assert [c.delta for c in first] == [c.delta for c in other]
    assert [(c.ci_low, c.ci_high) for c in first] != [(c.ci_low, c.ci_high) for c in other]
    assert all(c.p_value is None and c.seeds == 1 for c in first)
    assert "image sampling only" in verdict(first[0])


def test_runs_on_other_images_are_refused(three_seed_runs):
    other = [{"all": synthetic_stats(0, images=29), "small": synthetic_stats(1, images=29)}] * 3
    with pytest.raises(ValueError, match="same images"):
        paired_comparisons({"reference": three_seed_runs["reference"], "other": other}, resamples=10)


def test_sign_flip_p_value_and_latency_ratio_interval():
    assert sign_flip_p_value([0.01, 0.02, 0.03]) == 0.25
    assert sign_flip_p_value([0.01, -0.01]) == 1.0
    assert sign_flip_p_value([0.02]) is None
    rng = np.random.default_rng(0)
    reference = 10 + rng.random(30)
    ratio, low, high = ratio_interval(reference * 1.2, reference)
    assert ratio == pytest.approx(1.2) and low <= ratio <= high
    assert ratio_interval(reference, reference) == (1.0, 1.0, 1.0)
    noisy = reference * (1 + 0.2 * rng.standard_normal(30))
    ratio, low, high = ratio_interval(noisy, reference)
    assert low < ratio < high and high - low > 0.02


def test_verdict_claims_a_difference_only_as_far_as_seeds_and_interval_allow():
    row = {"model": "b", "reference": "a", "metric": "map50_95", "images": 548}
    six_seeds = Comparison(**row, seeds=6, delta=-0.02, ci_low=-0.03, ci_high=-0.01, p_value=2 / 2**6)
    assert sign_flip_p_value([-0.01, -0.02, -0.03, -0.02, -0.01, -0.04]) == six_seeds.p_value
    assert verdict(six_seeds).endswith("lower than a beyond the interval")
    mixed = Comparison(**{**six_seeds.__dict__, "p_value": 0.3})
    assert (
        "sign-flip p = 0.30): lower than a beyond the interval, but not confirmed across seeds (p > 0.05)"
        in verdict(mixed)
    )
    outside = Comparison(**row, seeds=1, delta=0.001, ci_low=0.002, ci_high=0.01, p_value=None)
    assert "estimate lies outside its bootstrap interval" in verdict(outside) and "image sampling only" in verdict(
        outside
    )


def test_resample_chunk_evaluated_at_once_equals_ultralytics_per_set():
    """Many image sets in one vectorised pass (sets side by side in one array) give each set's own AP."""
    stats = synthetic_stats(4, images=20, preds=30, labels=6)
    weights = image_resamples(len(stats.images), 12, seed=11)
    weights[0] = 0
    weights[0, :3] = (4, 0, 2)  # heavy duplication: runs of copies of the same correct predictions
    ap = _Curves(stats).average_precision(weights)
    for counts, row in zip(weights, ap):
        expected = ultralytics_map(stats, *drawn(stats, counts))
        assert (row[0], row.mean()) == pytest.approx(expected, abs=1e-12)


def test_resamples_without_small_objects_are_counted_and_make_the_interval_unreliable():
    """Small objects in 2 of 30 images: about 1 resample in 8 draws neither, its AP_small is undefined and left out."""
    stats = synthetic_stats(5)
    small_images = 2
    keep = stats.target_image < small_images
    small = ImageStats(
        **{
            **stats.__dict__,
            "tp": stats.tp & (stats.pred_image < small_images)[:, None],  # no labels, no correct predictions
            "target_cls": stats.target_cls[keep],
            "target_image": stats.target_image[keep],
        }
    )
    runs = {
        "reference": [{"all": stats, "small": small}],
        "worse": [{"all": degraded(stats), "small": degraded(small)}],
    }
    resamples, seed = 200, 3
    comparisons = {c.metric: c for c in paired_comparisons(runs, resamples=resamples, seed=seed)}
    without_small = int((image_resamples(len(stats.images), resamples, seed)[:, :small_images].sum(1) == 0).sum())
    assert without_small > 0.1 * resamples  # the case under test: more than the allowed fraction
    ap_small = comparisons["ap_small"]
    assert (ap_small.dropped, ap_small.resamples) == (without_small, resamples)
    assert math.isfinite(ap_small.ci_low) and not ap_small.interval_reliable
    assert comparisons["map50_95"].dropped == 0 and comparisons["map50_95"].interval_reliable
    assert "so the interval is unreliable" in verdict(ap_small)
    assert "left out" not in verdict(comparisons["map50_95"])
    notes = dropped_resample_notes([("d", c) for c in comparisons.values()], multiple_datasets=False)
    assert notes == [
        f"worse vs reference, ap_small: {without_small} of {resamples} resamples had no small objects and were left "
        "out (more than 10 %, so the interval is unreliable)"
    ]
    plan = SimpleNamespace(
        models=["reference", "worse"],
        datasets=["d"],
        seeds=[0],
        settings=[SimpleNamespace(epochs=1, imgsz=64, batch=2)],
    )
    costs = {"params": 1, "gflops": 1, "latency_ms": 1, "train_s": 1}
    rows = [{"model": name, "seed": 0, "map50": 0.5, "map50_95": 0.3, **costs} for name in plan.models]
    report = markdown_report(rows, [("d", c) for c in comparisons.values()], plan, 1.0, resamples)
    assert "| ap_small (CI unreliable) |" in report and f"- {notes[0]}" in report
    # below the fraction the count is still reported, and the interval is not called unreliable
    few = Comparison(**{**ap_small.__dict__, "dropped": 5})
    assert few.interval_reliable and "unreliable" not in verdict(few)
    assert dropped_resample_notes([("d", few)], False) == [
        f"worse vs reference, ap_small: 5 of {resamples} resamples had no small objects and were left out"
    ]


def test_a_summed_statistics_task_gets_the_same_paired_bootstrap():
    """The interface issue 19's tasks use: per-image (correct, total) and accuracy from the sums."""
    from scsa_yolo.benchmark.comparisons import PerImageSums, SummedStatistics

    rng = np.random.default_rng(0)
    images = [f"im{i}.jpg" for i in range(200)]
    truth = rng.random(200)
    accuracy = SummedStatistics({"accuracy": lambda sums: sums[:, 0] / sums[:, 1]})

    def run(threshold, seed):
        correct = (truth + np.random.default_rng(seed).normal(0, 0.05, 200) > threshold).astype(float)
        return PerImageSums(images, np.stack([correct, np.ones(200)], 1))

    runs = {"ref": [run(0.5, 1), run(0.5, 2)], "better": [run(0.3, 1), run(0.3, 2)]}
    (comparison,) = paired_comparisons(runs, resamples=500, seed=3, task=accuracy)
    expected = np.mean([r.values[:, 0].mean() for r in runs["better"]]) - np.mean(
        [r.values[:, 0].mean() for r in runs["ref"]]
    )
    assert comparison.metric == "accuracy" and comparison.seeds == 2 and comparison.images == 200
    assert comparison.delta == pytest.approx(expected)
    assert 0 < comparison.ci_low < comparison.delta < comparison.ci_high  # about 0.2 better, clearly above 0
    with pytest.raises(ValueError, match="same images"):
        paired_comparisons(
            {"ref": runs["ref"], "other": [PerImageSums(images[::-1], runs["ref"][0].values)] * 2},
            resamples=10,
            task=accuracy,
        )
