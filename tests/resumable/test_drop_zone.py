"""The dashboard's drop zones: checkpoints and datasets go through tus, other endpoints stay multipart."""

from __future__ import annotations

from pathlib import Path

from dashboard.components.upload import CHUNK_BYTES, drop_zone

SCRIPT = Path(__file__).resolve().parents[2] / "dashboard" / "assets" / "upload.js"


def zone_attributes(endpoint: str, **kw) -> dict:
    zone = drop_zone(id="z", endpoint=endpoint, accept="", fields={}, refresh_id="r", label="l", **kw)
    return {k: v for k, v in zone.children[0].to_plotly_json()["props"].items() if k.startswith("data-")}


def test_checkpoint_uploads_are_resumable_in_8_mib_chunks():
    attrs = zone_attributes("/api/checkpoints")
    assert attrs["data-resumable"] == "/api/uploads"
    assert attrs["data-kind"] == "checkpoint"
    assert attrs["data-chunk-size"] == str(CHUNK_BYTES) == str(8 * 1024 * 1024)


def test_dataset_uploads_are_resumable_and_other_endpoints_stay_multipart_unless_asked():
    assert zone_attributes("/api/datasets")["data-kind"] == "dataset"
    assert "data-resumable" not in zone_attributes("/api/other")
    assert "data-resumable" not in zone_attributes("/api/checkpoints", resumable=False)


def test_the_script_speaks_tus_itself_and_renders_server_text_as_text():
    script = SCRIPT.read_text()
    for needle in ('"Tus-Resumable"', '"Upload-Offset"', "application/offset+octet-stream", '"HEAD"'):
        assert needle in script
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "http://" not in script and "https://" not in script  # no CDN, no external library
