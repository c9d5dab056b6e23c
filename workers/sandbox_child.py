"""Entry point of the checkpoint-loading sandbox: runs as ``python -I sandbox_child.py FORMAT IN OUT MAX``.

Started by :mod:`workers.sandbox` in a child process with rlimits, a clean environment and a private
output folder. It imports only the standard library, torch and safetensors (never the ``workers``
package), loads ``IN`` with ``torch.load(weights_only=True, map_location="cpu")`` or safetensors, and
writes ``OUT/tensors.safetensors`` plus ``OUT/result.json``::

    {"ok": true, "meta": {scalar metadata}, "wrapper": "state_dict" | null}
    {"ok": false, "error": "text for the user"}

Nothing crosses the boundary as pickle. A failed load is never retried with ``weights_only=False``.
"""

from __future__ import annotations

import json
import math
import os
import sys

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
MAX_META_ITEMS = 200
MAX_META_TEXT = 1000
MAX_SHOWN = 200


def _show(text: object) -> str:
    text = str(text)
    return repr(text[:MAX_SHOWN]) + ("..." if len(text) > MAX_SHOWN else "")


class Refused(Exception):
    """A file the child will not hand back, with the user's message."""


def _scalar(value, torch):
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.layout == torch.strided:
        value = value.item()
    if isinstance(value, bool) or isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        return value[:MAX_META_TEXT]
    return None


def _scalar_meta(obj: dict, skip: str, torch) -> dict:
    meta = {}
    for key, value in obj.items():
        if key == skip or not isinstance(key, str) or len(meta) >= MAX_META_ITEMS:
            continue
        scalar = _scalar(value, torch)
        if scalar is not None:
            meta[key[:MAX_META_TEXT]] = scalar
    return meta


def _unwrap(obj, torch) -> tuple[dict, dict, str | None]:
    if not isinstance(obj, dict):
        raise Refused(
            f"expected a state_dict (a mapping of names to tensors); the file holds a {type(obj).__name__}"
        )
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, _scalar_meta(obj, key, torch), key
    return obj, {}, None


def _tensors(state: dict, torch, max_elements: int) -> dict:
    out, seen, total = {}, set(), 0
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if not isinstance(key, str):
            raise Refused(f"state_dict keys must be strings, got a {type(key).__name__}")
        if value.layout != torch.strided or value.is_quantized or value.is_nested:
            raise Refused(f"tensor {_show(key)} is sparse, quantized or nested; save dense tensors")
        total += value.numel()
        if total > max_elements:
            raise Refused(f"the checkpoint holds more than {max_elements} elements, the configured limit")
        storage = (value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
        whole = value.is_contiguous() and value.storage_offset() == 0
        whole = whole and value.numel() * value.element_size() == storage[1]
        out[key] = value.detach() if whole and storage not in seen and storage[1] else value.detach().clone()
        seen.add(storage)
    if not out:
        raise Refused("the file holds no tensors")
    return out


def _load(fmt: str, path: str, torch):
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    try:
        return torch.load(path, weights_only=True, mmap=fmt == "torch_zip", map_location="cpu")
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "Unsupported global" in ln or "Unsupported operand" in ln), None)
        if "allocate memory" in str(exc):  # DefaultCPUAllocator, or mmap under RLIMIT_AS (ENOMEM)
            raise MemoryError from None
        if detail is not None:
            raise Refused(
                f"the file holds Python objects beyond tensors ({detail[:300]}), e.g. a whole model saved "
                "with torch.save(model) or by Torch-Pruning; PruneScope loads weights only "
                "(weights_only=True): save model.state_dict() instead"
            ) from None
        msg = lines[0][:300] if lines else type(exc).__name__
        raise Refused(
            f"torch could not load the file with weights_only=True ({msg}); "
            "save a plain state_dict: torch.save(model.state_dict(), 'weights.pt')"
        ) from None


def main(argv: list[str]) -> int:
    fmt, path, out_dir, max_elements = argv[1], argv[2], argv[3], int(argv[4])
    result_path = os.path.join(out_dir, "result.json")
    try:
        import torch
        from safetensors.torch import save_file

        torch.set_num_threads(1)
        state, meta, wrapper = _unwrap(_load(fmt, path, torch), torch)
        tensors = _tensors(state, torch, max_elements)
        save_file(tensors, os.path.join(out_dir, "tensors.safetensors"))
        result = {"ok": True, "meta": meta, "wrapper": wrapper}
    except Refused as exc:
        result = {"ok": False, "error": str(exc)}
    except MemoryError:
        result = {"ok": False, "error": "memory"}
    except OSError as exc:
        result = {"ok": False, "error": "output" if exc.errno == 27 else f"the loader failed: {exc.strerror}"}
    except ImportError as exc:  # under a small RLIMIT_AS, torch's libraries cannot be mapped
        result = {"ok": False, "error": "memory" if "map" in str(exc) else "the loader cannot import torch"}
    except Exception as exc:  # noqa: BLE001 - any other failure is reported, never retried differently
        too_big = "File too large" in str(exc) or "code: 27" in str(exc)  # safetensors' EFBIG
        result = {"ok": False, "error": "output" if too_big else f"the loader failed ({type(exc).__name__})"}
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
