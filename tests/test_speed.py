"""The speed bench on tiny sizes: one bench for CPU and CUDA (device a parameter), typed rows, paths switched back,
and the timing harness checked against a fake clock (so the test can fail without depending on real timings)."""

from __future__ import annotations

import itertools

import pytest
import torch

from scsa_yolo import cli
from scsa_yolo.benchmark import measure, speed
from scsa_yolo.benchmark.speed import ModuleRow, bench_model, bench_module, format_report, scsa_path
from scsa_yolo.nn import SCSA, scsa_fused


@pytest.fixture
def fake_candidates(monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list[str]]:
    """Candidates A and B under a clock that only they advance (A by 2 ms, B by 5 ms per call), and their call order."""
    now = [0.0]
    monkeypatch.setattr(measure, "clock", lambda: now[0])
    order: list[str] = []

    def candidate(name: str, ms: float):
        def run() -> None:
            order.append(name)
            now[0] += ms / 1000

        return run

    return {"a": candidate("a", 2.0), "b": candidate("b", 5.0)}, order


def test_interleaved_timing_attributes_each_call_to_its_candidate(fake_candidates) -> None:
    """The medians are exact: each call's time goes to its own candidate."""
    candidates, order = fake_candidates
    medians = measure.time_interleaved(candidates, repeats=4, warmup=1)
    assert medians == pytest.approx({"a": 2.0, "b": 5.0})
    assert order == ["a", "b"] * 5  # one warm-up round, then four rounds taking turns


def test_alternating_rounds_reverse_the_order_and_keep_each_candidates_times(fake_candidates) -> None:
    """``alternate``: A, B then B, A (what deploy times runtimes with); each time still goes to its own candidate."""
    candidates, order = fake_candidates
    samples = measure.interleaved_samples(candidates, repeats=4, warmup=1, alternate=True)
    assert samples == {"a": pytest.approx([2.0] * 4), "b": pytest.approx([5.0] * 4)}
    assert order == ["a", "b"] + ["a", "b", "b", "a"] * 2  # warm-up, then rounds 0-3


def test_bench_module_times_every_path_and_checks_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    clock = itertools.count()
    monkeypatch.setattr(measure, "clock", lambda: next(clock) / 1000)  # every timing is 1 ms
    rows = bench_module("cpu", shapes=((8, 14), (16, 9)), repeats=2)
    assert torch.get_num_threads() == threads  # restored after the one-thread timings
    assert all(isinstance(row, ModuleRow) for row in rows)
    assert [(row.channels, row.side, row.batch, row.precision) for row in rows] == [
        (8, 14, 1, "fp32"),
        (16, 9, 1, "fp32"),
    ]
    for row in rows:
        assert row.forward == pytest.approx({"ref": 1.0, "ops": 1.0, "fast": 1.0})
        assert row.forward_backward == pytest.approx({"ref": 1.0, "ops": 1.0, "fast": 1.0})
        assert row.max_abs_diff <= 1e-5 and row.ops_max_abs_diff <= 1e-5
    report = format_report(rows, None, "test device")
    assert report.startswith("Device: test device")
    assert "| 8 x 14 x 14 | 1 | fp32 | yes | 1.000 | 1.000 | 1.000 | 1.0x |" in report


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


def test_model_bench_rows_and_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model bench's loops, paths and report on stand-in models, with a clock where SCSA models cost twice."""

    def stand_in(cfg: str) -> torch.nn.Module:
        layers = [torch.nn.Conv2d(3, 8, 3, padding=1)]
        return torch.nn.Sequential(*layers, SCSA(8)) if "scsa" in cfg else torch.nn.Sequential(*layers)

    monkeypatch.setattr(speed, "_build_detection_model", stand_in)
    now = [0.0]
    monkeypatch.setattr(measure, "clock", lambda: now[0])
    original = torch.nn.Sequential.forward

    def forward(self, x):  # advances the fake clock: 1 ms per layer
        now[0] += len(self) / 1000
        return original(self, x)

    monkeypatch.setattr(torch.nn.Sequential, "forward", forward)
    result = bench_model("cpu", imgsz=16, infer_batches=(1, 2), repeats=2, train_batch=2, train_repeats=2)
    names = ["yolov8n", "yolov8n-scsa", "yolov8n-scsa-ops", "yolov8n-scsa-reference"]
    assert [row.name for row in result.rows] == names and result.train_precision == "fp32"
    infer = [round(row.infer_ms[batch], 6) for row in result.rows for batch in (1, 2)]
    assert infer == [1.0, 1.0] + [2.0, 2.0] * 3
    assert [row.train_ms for row in result.rows] == pytest.approx([1.0, 2.0, 2.0, 2.0])
    report = format_report([], result, "test")
    assert "| yolov8n-scsa | 2.00 | 2.000x | 2.00 | 2.000x |" in report and "inference b2" in report


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeats", "0"], "--repeats 0 must be at least 1"),
        (["--imgsz", "0"], "--imgsz 0 must be a positive multiple of 32"),
        (["--threads", "0"], "--threads 0 must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(argv, message, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["speed", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"scsa-yolo speed: error: {message}"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a CUDA device")
def test_bench_speed_cuda_without_a_gpu_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    """--device cuda without CUDA exits 2 (bad set-up, nothing timed), not 1 (the benchmark's 'runs failed')."""
    import scsa_yolo_command  # what scripts/bench_speed.py calls: sys.exit(script_main("speed", argv))

    assert scsa_yolo_command.script_main("speed", ["--device", "cuda"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--device cuda: no CUDA device" in lines[0], captured.err
    assert captured.out == ""
