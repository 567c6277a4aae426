"""Importing torchvision next to a CPU-only torch.

PyPI's torchvision wheels are CUDA builds; beside the CPU torch wheel their C++ extension does
not load, and `import torchvision` then fails with "operator torchvision::nms does not exist"
(its fake-tensor registrations assume the extension defined the `nms` and `qnms` schemas).
`import_torchvision()` defines just those two schemas when, and only when, that failure happens,
so the pure-Python parts (models, transforms) that pytorch-fid needs import normally. Detection
operators stay unavailable; fader never uses them, nor torchvision's C++ image I/O (Pillow reads
and writes every image).
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

_MISSING_EXTENSION = "operator torchvision::nms does not exist"

#: Schemas the failed extension would have defined and torchvision's Python code needs at import.
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)

_library: torch.library.Library | None = None  # kept alive: dropping it would undefine the ops


def import_torchvision() -> ModuleType:
    """Import torchvision, working around a C++ extension that failed to load (see module doc)."""
    global _library
    try:
        import torchvision
    except RuntimeError as err:
        if _MISSING_EXTENSION not in str(err) or _library is not None:
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _library.define(schema)
        import torchvision
    return torchvision
