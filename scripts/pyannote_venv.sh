#!/usr/bin/env bash
# Build (once) the separate virtualenv the pyannote.audio backend is tested in, and print its path.
#
# pyannote.audio 4 needs torch + torchaudio (+ torchcodec) of matching releases: torch 2.9.1 from
# PyPI (a CUDA build, several GB), which the main .venv must not carry. The venv is cached at
# ${EARWITNESS_PYANNOTE_VENV:-~/.cache/earwitness/pyannote-venv}; a stamp holding the hash of
# pyproject.toml and of the pins below makes a second run a no-op. Progress goes to stderr,
# the venv path alone to stdout: VENV="$(scripts/pyannote_venv.sh)".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PVENV="${EARWITNESS_PYANNOTE_VENV:-$HOME/.cache/earwitness/pyannote-venv}"
PY="${PYTHON:-python3}"
# Releases that pair with each other (torchaudio/torchcodec are built against one torch).
TORCH_PINS=("torch==2.9.1" "torchaudio==2.9.*" "torchcodec==0.8.*")

# The checkout's path is part of the key: the project is installed editable, so a venv made for
# another clone would test that clone's code.
key="$( (echo "$ROOT"; cat "$ROOT/pyproject.toml"; printf '%s\n' "${TORCH_PINS[@]}") | sha256sum | cut -d' ' -f1)"
stamp="$PVENV/.earwitness-pyannote"
if [ -x "$PVENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  echo "==> pyannote venv up to date: $PVENV" >&2
  echo "$PVENV"
  exit 0
fi

t0=$(date +%s)
if [ ! -x "$PVENV/bin/python" ]; then
  echo "==> creating $PVENV" >&2
  mkdir -p "$(dirname "$PVENV")"
  "$PY" -m venv "$PVENV"
fi
pip=("$PVENV/bin/pip" install -q --disable-pip-version-check)
quiet() {  # this machine's pip.conf names local index dirs lacking most projects: one line each
  "$@" 2> >(grep -v "^WARNING: Location 'file://.*' is ignored" >&2) >&2
}
# This machine's pip constraints cap torch at a release its local wheel dir holds; they allow
# 2.9.1. If a cap ever excludes the pins, set PIP_CONSTRAINT= for this command only.
echo "==> pip install ${TORCH_PINS[*]}" >&2
quiet "${pip[@]}" "${TORCH_PINS[@]}"
echo "==> pip install -e $ROOT[pyannote,dev]" >&2
# The pins again, so the resolver keeps them rather than a newer torch from a wheel dir.
quiet "${pip[@]}" -e "$ROOT[pyannote,dev]" "${TORCH_PINS[@]}"
echo "$key" >"$stamp"
echo "==> pyannote venv built in $(($(date +%s) - t0)) s ($(du -sh "$PVENV" | cut -f1)): $PVENV" >&2
echo "$PVENV"
