"""Session fixture: tiny SD2.1-topology models saved by the stock classes in the three downloaded folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_BUILT: dict[str, Any] = {}


@pytest.fixture(scope="session")
def tiny_download(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("diffusers", reason="needs fawn[diffusion]")
    pytest.importorskip("transformers", reason="needs fawn[diffusion]")
    from streamer.models.diffusion.tiny import write_tiny_sd21_download

    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        _BUILT[key] = write_tiny_sd21_download(Path(tmp_path_factory.mktemp("downloads")))
    return _BUILT[key]
