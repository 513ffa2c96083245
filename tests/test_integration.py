"""Registration with Ultralytics: YAML parsing at every scale, name lookup, errors, version guard, start-up hook."""

import os
import subprocess
import sys
import zipfile
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.nn.tasks import DetectionModel

import scsa_yolo
from scsa_yolo import integration
from scsa_yolo.models import model_yaml
from scsa_yolo.nn import SCSA
from scsa_yolo.nn.kernels.cpu import ENV_SWITCH

REPO = Path(__file__).resolve().parents[1]
SCALES = {"n": (0.25, 1024), "s": (0.50, 1024), "m": (0.75, 768), "l": (1.00, 512), "x": (1.25, 512)}
# (config, base widths of the C2f layers SCSA follows, from yolov8.yaml / yolov8-p2.yaml)
CONFIGS = {"yolov8-scsa": (256, 512, 1024), "yolov8-p2-scsa": (128, 256, 512, 1024)}


def scaled_width(base: int, scale: str) -> int:
    """The width Ultralytics gives a layer written as ``base`` channels, re-derived: min(base, max) * width, to 8."""
    width, max_channels = SCALES[scale]
    return int(-(-min(base, max_channels) * width // 8) * 8)


def scsa_layers(layers: torch.nn.Sequential) -> list:
    return [layer for layer in layers if isinstance(layer, SCSA)]


def build_on_meta(name: str) -> torch.nn.Sequential:
    with torch.device("meta"):
        layers, _ = tasks.parse_model(deepcopy(tasks.yaml_model_load(name)), ch=3, verbose=False)
    return layers


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_scale_builds_with_producer_channels(config, scale):
    layers = build_on_meta(f"{config.replace('yolov8', f'yolov8{scale}', 1)}.yaml")
    blocks = scsa_layers(layers)
    assert [block.dim for block in blocks] == [scaled_width(base, scale) for base in CONFIGS[config]]
    for block in blocks:
        producer = layers[block.i - 1]
        assert block.f == -1 and block.dim == producer.cv2.conv.out_channels
    assert layers[-1].f == [block.i for block in blocks]  # every SCSA output feeds Detect


def test_forward_keeps_shapes_on_maps_smaller_than_the_window():
    model = DetectionModel("yolov8n-scsa.yaml", verbose=False)
    blocks = scsa_layers(model.model)
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((i[0].shape, o.shape))) for b in blocks]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 96))  # P5 is 2x3 here: smaller than SCSA's 7x7 window
    for hook in hooks:
        hook.remove()
    assert len(seen) == len(blocks) and all(inp == out for inp, out in seen)


def test_scale_letter_and_bare_name_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = YOLO("yolov8s-p2-scsa.yaml")
    assert model.model.yaml["scale"] == "s"
    expected = [scaled_width(base, "s") for base in CONFIGS["yolov8-p2-scsa"]]
    assert [block.dim for block in scsa_layers(model.model.model)] == expected


def test_local_yaml_takes_precedence_over_packaged(tmp_path, monkeypatch):
    local = model_yaml("yolov8-scsa.yaml").read_text().replace("nc: 80", "nc: 3")
    (tmp_path / "yolov8-scsa.yaml").write_text(local)
    monkeypatch.chdir(tmp_path)
    assert YOLO("yolov8n-scsa.yaml").model.yaml["nc"] == 3


def test_saved_yaml_keeps_rows_as_written():
    model = DetectionModel("yolov8n-scsa.yaml", verbose=False)
    rows = [row for row in model.yaml["head"] if row[2] == "SCSA"]
    assert rows == [[-1, 1, "SCSA", []]] * 3


def test_yaml_arguments_reach_the_block():
    config = {"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "SCSA", [2, 5]]], "head": []}
    layers, _ = tasks.parse_model(config, ch=3, verbose=False)
    assert (layers[1].dim, layers[1].head_num, layers[1].window_size) == (16, 2, 5)
    assert config["backbone"][1] == [-1, 1, "SCSA", [2, 5]]  # caller's dict untouched


def test_bad_head_count_names_the_yaml_layer(tmp_path):
    config = yaml.safe_load(model_yaml("yolov8-scsa.yaml").read_text())
    config["head"][20 - len(config["backbone"])][3] = [3]
    (tmp_path / "yolov8n-bad.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"layer 20 \(SCSA.*c1=128, head_num=3"):
        DetectionModel(str(tmp_path / "yolov8n-bad.yaml"), verbose=False)


def test_bad_channel_count_names_the_yaml_layer():
    config = {"nc": 2, "backbone": [[-1, 1, "SCSA", []], [-1, 1, "Conv", [16, 3, 2]]], "head": []}
    with pytest.raises(ValueError, match=r"layer 0 \(SCSA.*divisible by 4.*c1=6"):
        tasks.parse_model(config, ch=6, verbose=False)  # e.g. a 6-band multispectral input


def test_multi_input_row_is_rejected_clearly():
    config = {"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]], [[-1, 0], 1, "SCSA", []]], "head": []}
    with pytest.raises(ValueError, match=r"layer 1 \(SCSA\).*one layer"):
        tasks.parse_model(config, ch=3, verbose=False)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            [-1, 1, "SCSA"],
            r"layer 1: \[-1, 1, 'SCSA'\] is not a row \[from, repeats, module, args\].*\[-1, 1, SCSA, \[\]\]",
        ),
        ([-1, 1, "SCSA", ["x"]], r"layer 1 \(SCSA.*head_num expects int, got 'x' \(str\).*\[head_num, window_size"),
        ([-1, 1, "SCSA", {"head_num": 2}], r"layer 1 \(SCSA\): args must be a list.*got \{'head_num': 2\} \(dict\)"),
        ([-1, 1, "SCSA", [1, 7, [3, 5, 7, 9], False, "avg_pool", 0.0, "sigmoid", 1]], r"at most 7 arguments"),
        ([-1, 1, "C3k2_SCSA", [8, False, 0.25]], r"layer 1 \(C3k2_SCSA\): bottleneck 'm.0' has 1 middle channels"),
    ],
)
def test_bad_rows_name_the_layer_and_the_fix(row, message):
    config = {"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]], row], "head": []}
    with pytest.raises(ValueError, match=message):
        tasks.parse_model(config, ch=3, verbose=False)


def test_string_arguments_the_block_takes_still_reach_it():
    config = {
        "nc": 2,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "SCSA", [1, 7, [3, 5, 7, 9], False, "max_pool"]]],
    }
    layers, _ = tasks.parse_model({**config, "head": []}, ch=3, verbose=False)
    assert layers[1].down_sample_mode == "max_pool"


def test_restricted_loading_takes_timm_blocks_and_backbone_placement(tmp_path):
    pytest.importorskip("timm", reason="the SE block wraps timm (extra 'compare')")
    for name in ("yolov8n-se.yaml", "yolov8n-scsa-both.yaml"):
        YOLO(name).save(tmp_path / name.replace(".yaml", ".pt"))
    code = (
        "from ultralytics import YOLO;"
        f"names = ('yolov8n-se.pt', 'yolov8n-scsa-both.pt');"
        f"print([type(YOLO(r'{tmp_path}/' + n).model.model[16]).__name__ for n in names])"
    )
    assert run_python(code, ULTRALYTICS_SAFE_LOAD="1").split()[-2:] == ["['SE',", "'SCSA']"]


def test_register_is_idempotent(monkeypatch):
    parse_model, check_yaml, load = tasks.parse_model, tasks.check_yaml, tasks.BaseModel.load
    monkeypatch.setattr(integration, "_registered", False)  # run the whole registration again, not the early exit
    scsa_yolo.register()
    scsa_yolo.register()
    assert tasks.parse_model is parse_model and tasks.check_yaml is check_yaml and tasks.BaseModel.load is load
    assert not hasattr(integration._original(parse_model), "__scsa_yolo_wrapped__")


def test_version_guard_names_supported_range(monkeypatch):
    import ultralytics

    monkeypatch.setattr(ultralytics, "__version__", "9.0.0")
    with pytest.raises(integration.UnsupportedUltralytics, match=r"ultralytics 9\.0\.0: .*>=8\.2\.103,<8\.5"):
        integration.check_ultralytics()
    monkeypatch.setattr(ultralytics, "__version__", "8.2.102")
    with pytest.raises(integration.UnsupportedUltralytics, match=r"8\.2\.102"):
        integration.check_ultralytics()


@pytest.mark.parametrize(
    ("version", "supported"),
    [("8.2.103", True), ("8.3.0", True), ("8.4.190", True), ("8.4.999rc1", True), ("8.2.102", False),
     ("8.5.0", False), ("8.5.0rc1", False), ("9.0", False), ("8.1.47", False)],
)  # fmt: skip
def test_supported_range(version, supported):
    assert integration.version_supported(version) is supported


def test_guard_detects_parse_model_without_its_locals_lookup(monkeypatch):
    def parse_model(d, ch, verbose=True):
        channels = [ch]
        return locals(), channels

    monkeypatch.setattr(tasks, "parse_model", parse_model)
    assert integration.parse_model_features(parse_model) == []
    with pytest.raises(integration.UnsupportedUltralytics, match="no longer resolves string arguments"):
        monkeypatch.setattr(tasks, "parse_model", lambda d, ch, verbose=True: ch)
        integration.check_ultralytics()


def test_guard_detects_changed_parse_model(monkeypatch):
    monkeypatch.setattr(tasks, "parse_model", lambda cfg, channels, verbose=True: None)
    with pytest.raises(integration.UnsupportedUltralytics, match="signature"):
        integration.check_ultralytics()


def run_python(code: str, **env: str) -> str:
    environment = {**os.environ, **env}
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return result.stdout


def test_startup_hook_is_lazy_and_registers_on_ultralytics_import():
    loaded = run_python("import sys; print([m for m in ('torch', 'ultralytics') if m in sys.modules])")
    assert loaded.strip() == "[]"
    assert run_python("import sys; print('scsa_yolo' in sys.modules)", SCSA_YOLO_AUTOLOAD="0").strip() == "False"
    probe = "from ultralytics.nn import tasks; print(hasattr(tasks, 'SCSA'))"
    assert run_python(probe).strip() == "True"
    assert run_python(probe, SCSA_YOLO_AUTOLOAD="0").strip() == "False"


def test_wheel_install_ships_the_hook_and_builds_derived_models(tmp_path):
    pytest.importorskip("hatchling", reason="the dev extra installs hatchling to build the wheel offline")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path, REPO],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("scsa_yolo-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "scsa_yolo_autoload.pth",
        "scsa_yolo_autoload.py",
        "scsa_yolo/nn/csrc/cpu/scsa_cpu.cpp",  # the CPU kernel is built from the installed source
    } <= names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # A fresh interpreter without site (so the editable install's hook does not run) that processes the wheel's
    # .pth the way site-packages would, with this environment's packages as plain path entries.
    site_packages = [p for p in sys.path if p.endswith("site-packages")]
    code = (
        f"import sys, site; sys.path += {site_packages!r}; site.addsitedir({str(target)!r});"
        "from ultralytics import YOLO; import scsa_yolo;"
        "m = YOLO('yolov8m-scsa.yaml'); print(scsa_yolo.__file__); print(m.model.yaml['scale'])"
    )
    # A checkout on PYTHONPATH would shadow the wheel; the kernel stays off, since building it from the wheel's copy
    # of the source costs a minute and rebuilds the shared extension folder for the checkout after it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {ENV_SWITCH: "0"}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    assert out[-2].startswith(str(target)) and out[-1] == "m"


def test_unsupported_ultralytics_warns_and_leaves_plain_models_working():
    code = (
        "import warnings, ultralytics; ultralytics.__version__ = '9.0.0'; warnings.simplefilter('always');"
        "from ultralytics.nn import tasks; print(hasattr(tasks, 'SCSA'));"
        "print(len(tasks.DetectionModel('yolov8n.yaml', verbose=False).model))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "23"]
    assert "scsa_yolo is installed but not registered" in result.stderr and ">=8.2.103,<8.5" in result.stderr


def test_import_is_light_and_registers_in_either_order():
    light = "import sys, scsa_yolo; print([m for m in ('torch', 'ultralytics') if m in sys.modules])"
    assert run_python(light, SCSA_YOLO_AUTOLOAD="0").strip() == "[]"
    before = "import scsa_yolo; from ultralytics.nn import tasks; print(hasattr(tasks, 'SCSA'))"
    after = "from ultralytics.nn import tasks; import scsa_yolo; print(hasattr(tasks, 'SCSA'))"
    for code in (before, after):
        assert run_python(code, SCSA_YOLO_AUTOLOAD="0").strip() == "True"
    assert run_python("import scsa_yolo; print(scsa_yolo.SCSA.__module__)").strip() == "scsa_yolo.nn.scsa"


def test_explicit_register_raises_one_line_on_unsupported_ultralytics():
    code = (
        "import ultralytics; ultralytics.__version__ = '8.5.1'; import scsa_yolo, warnings; "
        "warnings.simplefilter('ignore'); from ultralytics.nn import tasks\n"
        "try: scsa_yolo.register()\nexcept ImportError as e: print(type(e).__name__, e)"
    )
    out = run_python(code, SCSA_YOLO_AUTOLOAD="0").strip()
    assert out.startswith("UnsupportedUltralytics scsa_yolo cannot register its blocks with ultralytics 8.5.1")
    assert "pip install 'ultralytics>=8.2.103,<8.5'" in out and "\n" not in out


def test_python_m_scsa_yolo_names_an_unsupported_ultralytics_in_one_line():
    code = (
        "import sys, runpy, ultralytics; ultralytics.__version__ = '8.1.47'; sys.argv = ['scsa_yolo', 'checks'];"
        "runpy.run_module('scsa_yolo', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m scsa_yolo: error: scsa_yolo cannot register its blocks with ultralytics 8.1.47: this version is "
        "outside the supported range; scsa_yolo supports ultralytics>=8.2.103,<8.5: "
        "pip install 'ultralytics>=8.2.103,<8.5'"
    )


def test_muon_step_that_rejects_3d_weights_is_let_through():
    """A Muon step like Ultralytics 8.4.0's (2-D and 4-D only) updates a Conv1d weight once wrapped."""

    def muon_update(grad, momentum, beta=0.95, nesterov=True):
        momentum.lerp_(grad, 1 - beta)
        update = grad.lerp(momentum, beta) if nesterov else momentum
        if update.ndim == 4:
            update = update.view(len(update), -1)
        assert update.ndim == 2
        return update * max(1, grad.size(-2) / grad.size(-1)) ** 0.5

    assert integration._muon_update_rejects_3d(muon_update)
    wrapped = integration._wrap_muon_update(muon_update)
    assert not integration._muon_update_rejects_3d(wrapped)
    grad, momentum = torch.randn(8, 1, 3), torch.zeros(8, 1, 3)
    update = wrapped(grad, momentum, beta=0.9)
    assert update.shape == (8, 3) and torch.allclose(momentum, 0.1 * grad)  # the buffer itself was updated
    assert torch.equal(wrapped(torch.ones(4, 6), torch.zeros(4, 6)), muon_update(torch.ones(4, 6), torch.zeros(4, 6)))


def test_explicit_register_before_ultralytics_is_imported_does_not_deadlock():
    """register() imports Ultralytics, which runs the pending import hook, which registers in the same thread."""
    code = "import scsa_yolo; scsa_yolo.register(); from ultralytics.nn import tasks; print(hasattr(tasks, 'SCSA'))"
    env = {**os.environ, "SCSA_YOLO_AUTOLOAD": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["True"], result.stderr[-2000:]


def test_importing_the_bottleneck_wrappers_first_still_registers():
    """scsa_yolo.nn.csp imports Ultralytics, whose import runs the registration while csp is half-initialised."""
    code = (
        "import torch, scsa_yolo.nn.csp as csp\n"
        "from ultralytics.nn import tasks\n"
        "assert getattr(tasks.check_yaml, '__scsa_yolo_wrapped__', False), 'not registered'\n"
        "assert tasks.yaml_model_load('yolov8n-scsa.yaml')['head']\n"
        "allowed = set(torch.serialization.get_safe_globals())\n"
        "assert set(csp.WRAPPERS) <= allowed, 'wrappers not allowed in restricted loading'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-W", "error::UserWarning:ultralytics.nn", "-c", code], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
