"""/api/adapters: the LoRA adapters on this server (KINEMA_HOME/loras) that a job may
mix in by name, with what the studio shows of each: base model, rank, size, captions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kinema.pipelines.adapters import adapter_list
from kinema.web.context import Caller

__all__ = ["router"]

router = APIRouter()


@router.get("/api/adapters")
def adapters(caller: Caller) -> list[dict[str, Any]]:
    """Every readable adapter: name, base_model, rank, bytes, and from its card the rank
    of its decoder pairs (0: none), the training steps, the number of clips and their
    captions. Jobs name them in `adapters`."""
    out = []
    for entry in adapter_list():
        if "error" in entry:
            continue
        card = entry.get("card") or {}
        out.append(
            {
                "name": entry["name"],
                "base_model": entry.get("base_model"),
                "rank": entry.get("rank"),
                "decoder_rank": int(card.get("decoder_rank") or 0),
                "bytes": entry["bytes"],
                "steps": card.get("steps"),
                "clips": card.get("clips"),
                "captions": list(card.get("captions") or [])[:8],
            }
        )
    return out
