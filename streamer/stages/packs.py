"""insightface model packs as users download them (``~/.insightface/models/buffalo_l/...``): one lookup
for every model fawn reads from a pack (ArcFace embedders, the SCRFD detector)."""

from __future__ import annotations

import os
from pathlib import Path

from streamer.core.errors import ModelError

PACK_ORDER = ("buffalo_l", "antelopev2", "buffalo_m", "buffalo_s", "buffalo_sc")


def insightface_models_dir() -> Path:
    """Where insightface keeps its packs: ``$INSIGHTFACE_HOME/models`` or ``~/.insightface/models``."""
    root = os.environ.get("INSIGHTFACE_HOME") or "~/.insightface"
    return Path(root).expanduser() / "models"


def pack_folders(root: Path) -> list[Path]:
    """The folder itself, then the known packs in preference order, then any other sub-folder."""
    known = [root / name for name in PACK_ORDER if (root / name).is_dir()]
    others = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in PACK_ORDER)
    return [root, *known, *others]


def find_pack_model(location: str | Path | None, names: tuple[str, ...], what: str, setting: str) -> Path:
    """The first of ``names`` at ``location`` (a file, or a folder holding packs or model files; None:
    insightface's models folder). The error says where to put the pack and which ``setting`` to use."""
    where = Path(location).expanduser() if location else insightface_models_dir()
    if where.is_file():
        return where
    if where.is_dir():
        for folder in pack_folders(where):
            for name in names:
                if (folder / name).is_file():
                    return folder / name
    raise ModelError(
        f"no {what} found in {where}: put insightface's buffalo_l pack there "
        f"({where / 'buffalo_l' / names[0]}), or {setting} (recognized names: {', '.join(names)})"
    )
