"""`sync` in tables.yaml: incremental (the default), full, or cdc; anything else is refused."""

from __future__ import annotations

import pytest

from volt_assets.lib.config.table_config import parse_config


def document(sync: str | None) -> dict:
    block = {
        "primary_key": "id",
        "cursor": "updated_at",
        "columns": {"id": "bigint", "name": "text", "updated_at": "timestamptz"},
    }
    if sync is not None:
        block["sync"] = sync
    return {"tables": {"parts": block}}


def test_sync_cdc_is_accepted() -> None:
    parts = parse_config(document("cdc"))["parts"]
    assert (parts.sync, parts.cdc, parts.incremental) == ("cdc", True, False)


def test_incremental_stays_the_default() -> None:
    parts = parse_config(document(None))["parts"]
    assert (parts.sync, parts.cdc, parts.incremental) == ("incremental", False, True)


def test_an_unknown_sync_is_refused_naming_the_modes() -> None:
    with pytest.raises(
        ValueError, match="table 'parts': sync must be one of incremental, full, cdc"
    ):
        parse_config(document("stream"))
