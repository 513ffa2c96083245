"""Exact paired test of two classifiers on the same images (McNemar's test, exact binomial form).

Per seed, the images split into four cells: both models right, only the reference right, only the model right,
both wrong. Only the discordant images carry information about a difference; under "the models are equally
accurate" each discordant image is equally likely to favour either model, so the count favouring the model is
Binomial(discordant, 1/2) and the two-sided p-value is exact (``scipy.stats.binomtest``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scsa_yolo.benchmark.comparisons import PerImageSums


@dataclass(frozen=True)
class ExactPairedTest:
    """McNemar's exact test of one model against the reference, on one seed's top-1 right/wrong images.

    Attributes:
        model: The compared model.
        reference: The reference model.
        seed: Training seed of both runs.
        both_right: Images both models classified right (top-1).
        only_reference: Images only the reference got right.
        only_model: Images only the model got right.
        both_wrong: Images both got wrong.
        p_value: Two-sided exact binomial p-value of ``only_model`` among the discordant images (1.0 without any).
    """

    model: str
    reference: str
    seed: int
    both_right: int
    only_reference: int
    only_model: int
    both_wrong: int
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether p < 0.05."""
        return self.p_value < 0.05


def mcnemar_exact(only_reference: int, only_model: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    from scipy.stats import binomtest

    discordant = only_reference + only_model
    return 1.0 if discordant == 0 else float(binomtest(only_model, discordant, 0.5).pvalue)


def exact_paired_tests(
    runs: dict[str, Sequence[PerImageSums]], seeds: Sequence[int], column: int = 0
) -> list[ExactPairedTest]:
    """Test every model against the first one, seed by seed, on the per-image top-1 flags (``values[:, column]``).

    Args:
        runs: Model name (reference first) to one :class:`PerImageSums` per seed, same images in the same order.
        seeds: The seeds, in the runs' order.
        column: The per-image right/wrong column (0: top-1).

    Raises:
        ValueError: When two runs do not hold the same images.
    """
    names = list(runs)
    reference = names[0]
    tests = []
    for name in names[1:]:
        for index, seed in enumerate(seeds):
            base, other = runs[reference][index], runs[name][index]
            if base.images != other.images:
                raise ValueError(f"{name} seed {seed} was not validated on the same images as {reference}")
            a = np.asarray(base.values[:, column]) > 0.5
            b = np.asarray(other.values[:, column]) > 0.5
            only_reference, only_model = int((a & ~b).sum()), int((~a & b).sum())
            tests.append(
                ExactPairedTest(
                    model=name,
                    reference=reference,
                    seed=int(seed),
                    both_right=int((a & b).sum()),
                    only_reference=only_reference,
                    only_model=only_model,
                    both_wrong=int((~a & ~b).sum()),
                    p_value=mcnemar_exact(only_reference, only_model),
                )
            )
    return tests


def paired_test_lines(tests: Sequence[ExactPairedTest]) -> list[str]:
    """One sentence per test, for the report and the log."""
    lines = []
    for t in tests:
        text = (
            f"{t.model} vs {t.reference}, seed {t.seed}: top-1 right on {t.only_model} images where {t.reference} was "
            f"wrong, wrong on {t.only_reference} where it was right ({t.both_right} both right, {t.both_wrong} both "
            f"wrong); exact McNemar p = {t.p_value:.3g}: "
        )
        text += "the models differ" if t.significant else "no difference shown"
        lines.append(text)
    return lines
