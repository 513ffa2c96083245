"""scripts/bench_speed.py's functions on tiny sizes: every candidate timed, outputs checked, paths switched back."""

from __future__ import annotations

import pytest
import torch

from scsa_yolo.benchmark.speed import bench_module, format_report, scsa_path
from scsa_yolo.nn import SCSA, scsa_fused


def test_bench_module_times_every_path_and_checks_outputs() -> None:
    threads = torch.get_num_threads()
    rows = bench_module(shapes=((8, 14), (16, 9)), repeats=2)
    assert torch.get_num_threads() == threads  # restored after the one-thread timings
    assert [(row["channels"], row["side"]) for row in rows] == [(8, 14), (16, 9)]
    for row in rows:
        for path in ("ref", "ops", "fast"):
            assert row[f"{path}_fwd"] > 0 and row[f"{path}_fwd_bwd"] > 0
        assert row["max_abs_diff"] <= 1e-5 and row["ops_max_abs_diff"] <= 1e-5
    report = format_report(rows, None, "test device")
    assert report.startswith("Device: test device")
    ratio = rows[0]["ref_fwd"] / rows[0]["fast_fwd"]
    assert f"| 8 x 14 x 14 | {rows[0]['ref_fwd']:.3f} |" in report and f"| {ratio:.1f}x |" in report


def test_scsa_path_switches_blocks_and_restores_them(monkeypatch: pytest.MonkeyPatch) -> None:
    model = torch.nn.Sequential(SCSA(8), torch.nn.Conv2d(8, 8, 1), SCSA(8))
    x = torch.randn(1, 8, 9, 9)
    calls = []
    for block in (model[0], model[2]):
        block.forward_reference = lambda inp, b=block: calls.append(("reference", b)) or SCSA.forward_reference(b, inp)
    fused = scsa_fused.scsa
    monkeypatch.setattr(scsa_fused, "scsa", lambda x, *args: calls.append(("fused", x.shape)) or fused(x, *args))
    with scsa_path(model, "reference"):
        model(x)
    assert calls == [("reference", model[0]), ("reference", model[2])]
    calls.clear()
    with scsa_path(model, "ops"):
        model(x)
    assert calls == []  # neither the reference nor the fused kernel
    model(x)
    assert calls == [("fused", x.shape), ("fused", x.shape)]  # default path again, on the kernel
    assert "forward" not in vars(model[0])
    with pytest.raises(ValueError, match="must be one of"):
        with scsa_path(model, "compiled"):
            pass
