"""Models on the Hugging Face hub: asked for only by an explicit ``hf-hub:ORG/NAME``; nothing else downloads."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .saved_folder import CONFIG_FILE, WEIGHTS_FILE

__all__ = ["HUB_PREFIX", "download_from_hub"]

HUB_PREFIX = "hf-hub:"


def download_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError("hf-hub: models need the huggingface_hub package: pip install huggingface_hub") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except Exception as exc:
        raise ConfigError(f"hf-hub:{repo_id}: download failed ({str(exc).splitlines()[0][:160]})") from None
