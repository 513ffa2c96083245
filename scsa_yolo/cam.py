"""Grad-CAM style attention maps of YOLO detection models, side by side for several models.

The CAM maths (hooks on the chosen layers, gradient weighting, ReLU, per-layer min-max scaling, upsampling to the
input and averaging over layers) is the ``grad-cam`` package's (``pytorch_grad_cam``, extra ``compare``); this module
only supplies what a detection model needs on top:

* **the target**: a detector has no single class logit. For each image the scalar that is back-propagated is the sum
  of the class logits (the scores before Detect's sigmoid) of the raw Detect output (before NMS), one per anchor (its
  best class), over the anchors whose best class score reaches ``conf`` (0.25 by default, Ultralytics' predict
  threshold); when no anchor reaches it (an untrained or unsure model) the ``top_k`` best-scoring anchors are used
  instead, so there is always a map. Logits rather than scores, as Grad-CAM uses pre-softmax class scores: the
  sigmoid's slope would shrink the gradients of unsure anchors towards zero. The box rows are not part of the target.
* **the default layers**: the inputs of the Detect head (``Detect.f``). In the plain YOLOv8 these are the neck C2f
  layers 15, 18, 21; in the configs with an attention block (``yolov8-<block>.yaml``) they are the blocks
  themselves (16, 20, 24), so every model is looked at where its features enter the head. The three stride maps are
  averaged, each scaled to [0, 1] first.

Every map is min-max scaled per image, so a grid compares where each model looks, not how strongly.

Model files: ``.pt`` checkpoints (Ultralytics format) and ``.yaml`` model configs (built untrained: for testing the
pipeline, not for interpretation). An untrained model's BatchNorm layers hold their initial statistics (mean 0,
variance 1), under which activations shrink layer by layer (to about 1e-10 at the neck of YOLOv8n) and every map comes
out blank; for ``.yaml`` models the statistics are therefore first set from the images being explained
(``calibrate_batchnorm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from ultralytics.utils.torch_utils import select_device

import scsa_yolo  # noqa: F401  (registers the blocks, so configs and checkpoints with them load)
from scsa_yolo.errors import UsageError

__all__ = [
    "DetectionScoreTarget",
    "calibrate_batchnorm",
    "cam_grid",
    "detection_cams",
    "load_detection_model",
    "write_cam_grid",
]

TITLE_HEIGHT = 28
"""Height in pixels of the band above the grid that holds the column (model) titles."""

SCORE_EPS = 1e-6
"""Scores are clamped to [eps, 1 - eps] before the logit, so a saturated score gives a finite value."""

MAX_IMAGES = 8
"""Default cap on the images taken from a folder, so the grid stays viewable."""

MAX_STRIDE = 32
"""Largest stride of the YOLO detection heads: the input side must be a multiple of it."""

GRID_FORMATS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File name endings OpenCV writes the grid image as."""


def _grad_cam():
    """Import ``pytorch_grad_cam``, or fail with the install command of the extra that provides it."""
    from scsa_yolo.errors import require_extra

    return require_extra("pytorch_grad_cam", "attention maps (scsa-yolo cam)", "compare")


def cam_methods() -> dict:
    """Return the CAM methods offered by name (all from ``pytorch_grad_cam``)."""
    cams = _grad_cam()
    return {
        "gradcam": cams.GradCAM,
        "gradcam++": cams.GradCAMPlusPlus,
        "xgradcam": cams.XGradCAM,
        "layercam": cams.LayerCAM,
        "hirescam": cams.HiResCAM,
        "eigencam": cams.EigenCAM,  # gradient-free: the first principal component of the activations
    }


@dataclass(frozen=True)
class DetectionScoreTarget:
    """The scalar a CAM explains for one image of a detection model (see the module docstring).

    Attributes:
        num_classes (int): Class rows of the Detect output (they follow the 4 box rows).
        conf (float): Class-score threshold an anchor must reach to count.
        top_k (int): Anchors used when none reaches ``conf``.
    """

    num_classes: int
    conf: float = 0.25
    top_k: int = 10

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        """Sum the best-class logits of the confident anchors (or of the top-k anchors if none is confident).

        Args:
            output (torch.Tensor): One image's raw Detect output, shape (4 + num_classes [+ extra], anchors), class
                scores after the sigmoid.

        Returns:
            (torch.Tensor): A scalar that depends differentiably on the class scores.
        """
        best = output[4 : 4 + self.num_classes].amax(dim=0)  # (anchors,)
        chosen = best >= self.conf
        if not chosen.any():
            chosen = torch.zeros_like(chosen).index_fill_(0, best.topk(min(self.top_k, best.numel())).indices, True)
        return torch.logit(best[chosen], eps=SCORE_EPS).sum()


class DetectOutput(nn.Module):
    """A detection model whose forward returns only the raw Detect tensor (B, 4 + nc, anchors), as CAM code expects.

    Attributes:
        model (nn.Module): The wrapped Ultralytics detection model.
    """

    def __init__(self, model: nn.Module) -> None:
        """Wrap ``model``.

        Args:
            model (nn.Module): An Ultralytics ``DetectionModel`` (non end-to-end head).
        """
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model and keep the decoded predictions.

        Args:
            x (torch.Tensor): Images of shape (B, 3, H, W), RGB in [0, 1].

        Returns:
            (torch.Tensor): Predictions of shape (B, 4 + nc, anchors): boxes (xywh, pixels), then class scores.
        """
        output = self.model(x)
        return output[0] if isinstance(output, (list, tuple)) else output


def load_detection_model(path: str | Path) -> nn.Module:
    """Load a detection model from a checkpoint, or build one (untrained) from a model YAML.

    Args:
        path (str | Path): A ``.pt`` checkpoint, or a ``.yaml`` config (a file, or a name Ultralytics or scsa_yolo
            ships, e.g. 'yolov8n-scsa.yaml').

    Returns:
        (nn.Module): The FP32 model in eval mode, with gradients enabled (a stripped checkpoint has them off, and
        CAMs need them).

    Raises:
        ValueError: If the file is neither kind, or the model has no (non end-to-end) Detect head.
    """
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    suffix = Path(str(path)).suffix.lower()
    if suffix == ".pt":
        model, _ = load_checkpoint(path)
    elif suffix in {".yaml", ".yml"}:
        model = DetectionModel(str(path), verbose=False)
    else:
        raise UsageError(f"--model {path}: expected a .pt checkpoint or a .yaml model config")
    head = model.model[-1]
    if not isinstance(head, Detect) or head.end2end:
        raise UsageError(
            f"--model {path}: attention maps need a YOLO detection model with a standard (non end-to-end) head"
        )
    return model.float().eval().requires_grad_(True)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: np.ndarray) -> None:
    """Set the BatchNorm statistics of an untrained model from a batch of images (one training-mode forward pass).

    Args:
        model (nn.Module): The model; left in eval mode with updated running statistics, weights untouched.
        images (np.ndarray): RGB images, float32 in [0, 1], shape (N, S, S, 3).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    device = next(model.parameters()).device
    model.train()(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device))
    model.eval()


def model_title(path: str | Path) -> str:
    """Return a column title for a model file: the run name for ``<run>/weights/<name>.pt``, else the file stem."""
    path = Path(str(path))
    if path.parent.name == "weights" and path.parent.parent.name:
        return f"{path.parent.parent.name}/{path.stem}"
    return path.stem


def resolve_layers(model: nn.Module, layers: Sequence[int] | None) -> list[nn.Module]:
    """Pick the layers whose activations are explained.

    Args:
        model (nn.Module): An Ultralytics detection model.
        layers (Sequence[int] | None): Indices into ``model.model`` (negative ones count from the end); None for the
            inputs of the Detect head.

    Returns:
        (list[nn.Module]): The layers, in forward order (the order ``pytorch_grad_cam`` pairs activations and
        gradients in).

    Raises:
        ValueError: If an index is outside the model or names the Detect head itself.
    """
    count = len(model.model)
    requested = list(model.model[-1].f if layers is None else layers)
    resolved = sorted({i + count if i < 0 else i for i in requested})
    if any(not 0 <= i < count - 1 for i in resolved):
        raise UsageError(f"--layer must be indices of the {count - 1} layers before the Detect head, got {requested}")
    return [model.model[i] for i in resolved]


def letterbox_images(paths: Sequence[Path], imgsz: int) -> np.ndarray:
    """Read images and letterbox them to ``imgsz`` x ``imgsz``, as Ultralytics does for inference.

    Args:
        paths (Sequence[Path]): Image files.
        imgsz (int): Side of the square model input.

    Returns:
        (np.ndarray): RGB images, float32 in [0, 1], shape (N, imgsz, imgsz, 3).

    Raises:
        FileNotFoundError: If an image cannot be read.
    """
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=False)
    images = []
    for path in paths:
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise UsageError(f"--source: cannot read image {path} (damaged or not an image)")
        images.append(cv2.cvtColor(letterbox(image=bgr), cv2.COLOR_BGR2RGB))
    return np.stack(images).astype(np.float32) / 255.0


def detection_cams(
    model: nn.Module,
    images: np.ndarray,
    layers: Sequence[int] | None = None,
    method: str = "gradcam",
    conf: float = 0.25,
    top_k: int = 10,
) -> np.ndarray:
    """Compute one attention map per image for a detection model.

    Args:
        model (nn.Module): An Ultralytics detection model (see ``load_detection_model``).
        images (np.ndarray): Letterboxed RGB images, float32 in [0, 1], shape (N, S, S, 3), S a multiple of the
            model's largest stride.
        layers (Sequence[int] | None): Layer indices to explain; None for the inputs of the Detect head.
        method (str): A key of ``cam_methods()``.
        conf (float): Class-score threshold of the target.
        top_k (int): Anchors of the target when none reaches ``conf``.

    Returns:
        (np.ndarray): Maps of shape (N, S, S), float32, each scaled to [0, 1].

    Raises:
        ValueError: For an unknown method or an input size the model's strides do not divide.
    """
    methods = cam_methods()
    if method not in methods:
        raise UsageError(f"--method {method!r} is unknown; choose from {', '.join(sorted(methods))}")
    stride = int(model.stride.max())
    if images.shape[1] % stride or images.shape[2] % stride:
        raise UsageError(f"--imgsz {images.shape[1]} must be a multiple of the model's stride {stride}")
    device = next(model.parameters()).device
    batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    target = DetectionScoreTarget(num_classes=model.model[-1].nc, conf=conf, top_k=top_k)
    cam = methods[method](model=DetectOutput(model), target_layers=resolve_layers(model, layers))
    try:  # not cam's context manager: its __exit__ swallows IndexError
        return cam(input_tensor=batch, targets=[target] * len(images))
    finally:
        cam.activations_and_grads.release()


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], max_width: int, height: int) -> None:
    """Draw ``text`` in white on ``image`` (in place), shrunk to fit ``max_width`` x ``height`` pixels."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    (width, text_height), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = max(0.25, min(0.6, (max_width - 4) / max(width, 1), (height - 8) / max(text_height, 1)))
    cv2.putText(image, text, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def cam_grid(
    images: np.ndarray, cams: Sequence[np.ndarray], titles: Sequence[str], row_labels: Sequence[str]
) -> np.ndarray:
    """Overlay maps on their images and tile them: one row per image, one column per model, titles on top.

    Args:
        images (np.ndarray): RGB images, float32 in [0, 1], shape (N, S, S, 3).
        cams (Sequence[np.ndarray]): One (N, S, S) array of maps in [0, 1] per model.
        titles (Sequence[str]): One column title per model.
        row_labels (Sequence[str]): One label per image, written into its row's first cell.

    Returns:
        (np.ndarray): The grid, RGB uint8, shape (TITLE_HEIGHT + N * S, len(cams) * S, 3).
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    _grad_cam()
    n, size = images.shape[:2]
    grid = np.zeros((TITLE_HEIGHT + n * size, len(cams) * size, 3), dtype=np.uint8)
    for column, (maps, title) in enumerate(zip(cams, titles)):
        _put_text(grid, title, (column * size + 4, TITLE_HEIGHT - 9), size, TITLE_HEIGHT)
        for row in range(n):
            top, left = TITLE_HEIGHT + row * size, column * size
            grid[top : top + size, left : left + size] = show_cam_on_image(images[row], maps[row], use_rgb=True)
    for row, label in enumerate(row_labels):
        top = TITLE_HEIGHT + row * size
        grid[top : top + 18, :size] //= 3  # darken a strip so the label reads on any heat-map
        _put_text(grid, label, (3, top + 13), size, 20)
    return grid


def image_files(source: str | Path, max_images: int = MAX_IMAGES) -> list[Path]:
    """List the images to explain.

    Args:
        source (str | Path): An image file, or a folder (its images, sorted by name, at most ``max_images``).
        max_images (int): Cap for a folder.

    Returns:
        (list[Path]): Image files.

    Raises:
        UsageError: If the source does not exist or the folder has no images.
    """
    from ultralytics.data.utils import IMG_FORMATS

    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UsageError(f"--source {source}: no such image or folder")
    files = sorted(p for p in source.iterdir() if p.suffix.lower().lstrip(".") in IMG_FORMATS)[:max_images]
    if not files:
        raise UsageError(f"--source {source}: no images ({', '.join(sorted(IMG_FORMATS))}) in that folder")
    return files


def write_cam_grid(
    models: Sequence[str | Path],
    source: str | Path,
    *,
    layers: Sequence[int] | None = None,
    method: str = "gradcam",
    imgsz: int = 640,
    conf: float = 0.25,
    top_k: int = 10,
    max_images: int = MAX_IMAGES,
    device: str = "",
    output: str | Path = "runs/cam/cam_grid.jpg",
) -> Path:
    """Write a grid of attention maps, one column per model, one row per image (``scsa-yolo cam``).

    Args:
        models (Sequence[str | Path]): ``.pt`` checkpoints or ``.yaml`` configs, one column each.
        source (str | Path): Image file or folder of images.
        layers (Sequence[int] | None): Indices of the layers to explain; None takes the Detect inputs.
        method (str): A name in :func:`cam_methods`.
        imgsz (int): Square input size, a multiple of the largest stride.
        conf (float): Class-score threshold of the target.
        top_k (int): Anchors of the target when none reaches ``conf``.
        max_images (int): Cap on the images taken from a folder.
        device (str): Device as Ultralytics takes it (``""``: GPU 0 if present, else CPU).
        output (str | Path): Grid image to write; its folder is created.

    Returns:
        (Path): The written grid image.

    Raises:
        UsageError: For a bad argument (named), before any model is loaded.
    """
    check_arguments(models, imgsz=imgsz, conf=conf, top_k=top_k, max_images=max_images, output=output)
    if method not in cam_methods():
        raise UsageError(f"--method {method!r} is unknown; choose from {', '.join(sorted(cam_methods()))}")
    files = image_files(source, max_images)
    images = letterbox_images(files, imgsz)
    cams = []
    for path in models:
        model = load_detection_model(path).to(select_device(device, verbose=False))
        if Path(path).suffix.lower() in {".yaml", ".yml"}:
            calibrate_batchnorm(model, images)
        cams.append(detection_cams(model, images, layers, method, conf, top_k))
    grid = cam_grid(images, cams, [model_title(path) for path in models], [file.name for file in files])

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise UsageError(f"--output {output}: cannot write there")
    return output


def check_arguments(
    models: Sequence[str | Path], *, imgsz: int, conf: float, top_k: int, max_images: int, output: str | Path
) -> None:
    """Check the arguments of :func:`write_cam_grid` before any work, naming the flag at fault.

    Raises:
        UsageError: For a missing model file, a size that is not a positive multiple of 32, a threshold outside
            [0, 1], a count below 1, or an output that is not an image file name.
    """
    for path in models:
        if Path(str(path)).suffix.lower() == ".pt" and not Path(path).is_file():
            raise UsageError(f"--model {path}: no such checkpoint")
    if imgsz < MAX_STRIDE or imgsz % MAX_STRIDE:
        raise UsageError(
            f"--imgsz {imgsz} must be a positive multiple of {MAX_STRIDE} (the YOLO heads' largest stride)"
        )
    if not 0.0 <= conf <= 1.0:
        raise UsageError(f"--conf {conf} must lie in [0, 1]")
    for flag, value in (("--top-k", top_k), ("--max-images", max_images)):
        if value < 1:
            raise UsageError(f"{flag} {value} must be at least 1")
    if Path(output).suffix.lower() not in GRID_FORMATS:
        raise UsageError(f"--output {output}: the grid is an image; give a name ending in {', '.join(GRID_FORMATS)}")
