"""Model sources on the Hugging Face Hub: config.json and safetensors headers, never the weights.

Everything goes through huggingface_hub (imported here, lazily), so its cache (``HF_HUB_CACHE``),
token (``HF_TOKEN`` or ``hf auth login``) and offline mode (``HF_HUB_OFFLINE=1``) apply:

1. ``hf_hub_download`` of ``config.json`` and, when the repo has one, of
   ``model.safetensors.index.json`` (small files, cached like any download);
2. the safetensors headers: read from the cache when every shard is already there; otherwise
   fetched with ``get_safetensors_metadata`` (HTTP range requests for the header bytes only);
   offline with shards not cached, the estimate falls back to the config formula and says so.

Before the first request a TCP connection to the endpoint (``HF_ENDPOINT``, or the proxy when
``HTTPS_PROXY`` / ``HTTP_PROXY`` is set) is tried for at most :data:`PROBE_TIMEOUT_S`: when it
fails the Hub is treated as offline (the local cache only), so that no network fails in a second
with one line instead of huggingface_hub's ~25 s of retries (5 retries, 1+2+4+8+8 s backoff).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from vramcalc.errors import VramcalcError

from .checkpoint import TensorRecord
from .safetensors import (
    INDEX_FILE,
    SINGLE_FILE,
    read_json,
    read_tensors,
    records_from_header,
    shard_names,
)


def _hub() -> Any:
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
    except ImportError:
        raise VramcalcError(
            "reading models from the Hugging Face Hub needs huggingface_hub: "
            "pip install 'vramcalc[hub]'"
        ) from None
    return huggingface_hub


PROBE_TIMEOUT_S = 1.5


def _probe_target(endpoint: str) -> tuple[str, int] | None:
    """(host, port) a request to `endpoint` connects to first: the endpoint, or its proxy."""
    url = urlsplit(endpoint)
    https = url.scheme == "https"
    no_proxy = os.environ.get("NO_PROXY", os.environ.get("no_proxy", ""))
    bypass = any(
        h.strip() and (url.hostname or "").endswith(h.strip().lstrip("*"))
        for h in no_proxy.split(",")
    )
    names = ("HTTPS_PROXY", "https_proxy") if https else ("HTTP_PROXY", "http_proxy")
    proxy = next(
        (os.environ[n] for n in (*names, "ALL_PROXY", "all_proxy") if os.environ.get(n)), ""
    )
    if proxy and not bypass:
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        https = url.scheme == "https"
    if not url.hostname:
        return None
    try:
        port = url.port or (443 if https else 80)
    except ValueError:
        return None
    return url.hostname, port


@lru_cache(maxsize=8)
def endpoint_reachable(endpoint: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to `endpoint` (or its proxy) opens within `timeout_s`, name
    lookup included (run in a thread: getaddrinfo has no timeout of its own)."""
    target = _probe_target(endpoint)
    if target is None:
        return False
    opened: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(target, timeout=timeout_s):
                opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(opened)


def _offline(hub: Any, offline: bool) -> bool:
    """Local cache only: --offline, HF_HUB_OFFLINE=1, or the endpoint cannot be reached."""
    if offline or hub.constants.is_offline_mode():
        return True
    return not endpoint_reachable(str(hub.constants.ENDPOINT))


def fetch_config(repo_id: str, revision: str | None, offline: bool) -> tuple[Any, str]:
    """The repo's parsed config.json and its local path (cached by huggingface_hub)."""
    hub = _hub()
    with _errors(hub, repo_id, revision, "config.json"):
        path = hub.hf_hub_download(
            repo_id, "config.json", revision=revision, local_files_only=_offline(hub, offline)
        )
    return read_json(Path(path)), str(path)


def fetch_tensors(
    repo_id: str, revision: str | None, offline: bool
) -> tuple[list[TensorRecord] | None, str]:
    """Tensor records from the safetensors headers, or None and why they are unavailable."""
    hub = _hub()
    offline = _offline(hub, offline)
    with _errors(hub, repo_id, revision, INDEX_FILE):
        cached_index = hub.try_to_load_from_cache(repo_id, INDEX_FILE, revision=revision)
        if isinstance(cached_index, str):
            shards = shard_names(read_json(Path(cached_index)), f"{repo_id}/{INDEX_FILE}")
        elif cached_index is not None or offline:  # known absent, or unknown and offline
            shards = [SINGLE_FILE]
        else:
            try:
                index = hub.hf_hub_download(repo_id, INDEX_FILE, revision=revision)
                shards = shard_names(read_json(Path(index)), f"{repo_id}/{INDEX_FILE}")
            except hub.errors.EntryNotFoundError:
                shards = [SINGLE_FILE]
    cached = [hub.try_to_load_from_cache(repo_id, s, revision=revision) for s in shards]
    if all(isinstance(c, str) for c in cached):
        records = [r for s, c in zip(shards, cached, strict=True) for r in read_tensors(Path(c), s)]
        return records, f"{repo_id} ({len(shards)} cached shard{'s' * (len(shards) > 1)})"
    if offline:
        return (
            None,
            "offline and the safetensors shards are not cached: weights from the config formula",
        )
    with _errors(hub, repo_id, revision, "safetensors headers"):
        try:
            meta = hub.get_safetensors_metadata(repo_id, revision=revision)
        except hub.errors.NotASafetensorsRepoError:
            return None, "no safetensors weights in the repo: weights from the config formula"
    records = []
    for fname, file_meta in sorted(meta.files_metadata.items()):
        # the same checks as a local header: known dtype, non-negative shape, consistent bytes
        header = {
            tname: {
                "dtype": info.dtype,
                "shape": list(info.shape),
                "data_offsets": list(info.data_offsets),
            }
            for tname, info in file_meta.tensors.items()
        }
        records += records_from_header(header, f"{repo_id}/{fname}")
    return records, f"{repo_id} ({len(meta.files_metadata)} shard headers over HTTP)"


class _errors:
    """Turn huggingface_hub's exceptions into one VramcalcError line; its retry warnings
    ("Retrying in 1s [Retry 1/5]") are held back meanwhile, so a failure prints one line."""

    def __init__(self, hub: Any, repo_id: str, revision: str | None, what: str) -> None:
        self.hub, self.repo, self.rev, self.what = hub, repo_id, revision, what
        self.logger = logging.getLogger("huggingface_hub")
        self.level = self.logger.level

    def __enter__(self) -> None:
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        self.logger.setLevel(self.level)
        if exc is None or isinstance(exc, VramcalcError):
            return False
        e = self.hub.errors
        repo = self.repo + (f"@{self.rev}" if self.rev else "")
        if isinstance(exc, e.GatedRepoError):
            msg = f"{repo}: gated repository; accept its terms on huggingface.co and log in (HF_TOKEN or `hf auth login`)"
        elif isinstance(exc, e.RepositoryNotFoundError):
            msg = f"{repo}: no such model on the Hugging Face Hub (or private: set HF_TOKEN), and no local path of that name"
        elif isinstance(exc, e.RevisionNotFoundError):
            msg = f"{repo}: no revision {self.rev!r} in this repository"
        elif isinstance(exc, e.LocalEntryNotFoundError) or isinstance(exc, e.OfflineModeIsEnabled):
            msg = f"{repo}: {self.what} is not in the Hugging Face cache and the Hub cannot be reached (offline or no network)"
        elif isinstance(exc, e.EntryNotFoundError):
            msg = f"{repo}: the repository has no {self.what}"
        elif isinstance(exc, e.HFValidationError):
            msg = f"{repo!r} is not a valid Hugging Face repo id or revision"
        elif isinstance(exc, e.HfHubHTTPError):
            msg = f"{repo}: Hugging Face Hub error: {str(exc).splitlines()[0]}"
        elif isinstance(exc, OSError | ConnectionError):
            msg = f"{repo}: cannot reach the Hugging Face Hub: {exc.__class__.__name__}"
        else:
            return False
        raise VramcalcError(msg) from None
