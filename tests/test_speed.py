"""scripts/bench_speed.py's functions on tiny sizes: every candidate timed, outputs checked, paths switched back."""

from __future__ import annotations

import pytest
import torch

from scsa_yolo.benchmark import speed
from scsa_yolo.benchmark.speed import (
    bench_model_cuda,
    bench_module,
    bench_module_cuda,
    format_cuda_report,
    format_report,
    scsa_path,
)
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


def test_cuda_bench_bookkeeping_runs_on_any_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA benches' loops, paths and report, run on the CPU (synchronisation and autocast are no-ops there).

    The models are stand-ins (a conv, with an SCSA block for the SCSA names): building four YOLOv8n takes seconds.
    """

    def stand_in(cfg: str) -> torch.nn.Module:
        layers = [torch.nn.Conv2d(3, 8, 3, padding=1)]
        return torch.nn.Sequential(*layers, SCSA(8)) if "scsa" in cfg else torch.nn.Sequential(*layers)

    monkeypatch.setattr(speed, "_build_detection_model", stand_in)
    device = torch.device("cpu")
    rows = bench_module_cuda(device, shapes=((8, 9),), batches=(2,), precisions=("fp32",), repeats=1)
    assert [(row["batch"], row["precision"]) for row in rows] == [(2, "fp32")]
    for row in rows:
        assert row["fast_uses_kernel"]  # the op ran (here its CPU kernel)
        assert row["max_abs_diff"] <= 1e-5
        assert all(row[f"{path}_{kind}"] > 0 for path in ("ref", "ops", "fast") for kind in ("fwd", "fwd_bwd"))
    with pytest.warns(UserWarning, match="CUDA is not available"):  # GradScaler and autocast("cuda") step aside
        model = bench_model_cuda(device, imgsz=16, infer_batches=(2,), repeats=1, train_batch=2, train_repeats=1)
    report = format_cuda_report(rows, model, "test card")
    assert report.startswith("Device: test card")
    assert "| 8 x 9 x 9 | 2 | fp32 | yes |" in report
    names = ["yolov8n", "yolov8n-scsa", "yolov8n-scsa-ops", "yolov8n-scsa-reference"]
    assert [t.name for t in model["train"]] == names and [t.name for t in model["infer"][2]] == names
    assert "| yolov8n | " in report and "| 1.000x | " in report and "inference b2" in report


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a CUDA device")
def test_bench_speed_cuda_without_a_gpu_exits_with_one_line(capsys: pytest.CaptureFixture) -> None:
    """scripts/bench_speed.py --device cuda exits with status 1 and one line on stderr, before timing anything."""
    import scsa_yolo_command  # what scripts/bench_speed.py calls: sys.exit(script_main("speed", argv))

    assert scsa_yolo_command.script_main("speed", ["--device", "cuda"]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--device cuda: no CUDA device" in lines[0], captured.err
    assert captured.out == ""
