"""SCSA (Spatial and Channel Synergistic Attention) for Ultralytics YOLO.

Importing the package registers its blocks with Ultralytics, so model YAMLs can name ``SCSA``. The stock ``yolo``
command needs no import: the installed start-up hook (``scsa_yolo_autoload``) registers as soon as Ultralytics'
model code is imported.
"""

from scsa_yolo.integration import register
from scsa_yolo.models import model_yaml
from scsa_yolo.nn import BLOCKS, SCSA, create_block

from scsa_yolo.version import __version__
__all__ = ["BLOCKS", "SCSA", "create_block", "model_yaml", "register"]

register()
