"""Tile backends by URL: what ``overt log init --tiles URL`` accepts and ``log.json`` keeps.

``file:///ABSOLUTE/PATH`` is a directory (:class:`overt.log.fs.TileStore`);
``s3://BUCKET/PREFIX?endpoint=URL&region=NAME`` an S3-compatible bucket
(:class:`overt.log.s3.S3TileStore`, ``endpoint`` and ``region`` optional).
Anything else is a :class:`~overt.errors.ConfigError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

from overt.errors import ConfigError
from overt.log.backend import TileBackend

__all__ = ["configured_tiles", "open_tiles"]


def open_tiles(url: str) -> TileBackend:
    """The tile backend a ``--tiles`` URL names.

    ``file:///ABSOLUTE/PATH`` is a directory (:class:`overt.log.fs.TileStore`);
    ``s3://BUCKET/PREFIX?endpoint=URL&region=NAME`` an S3-compatible bucket
    (:class:`overt.log.s3.S3TileStore`; ``endpoint`` and ``region`` optional).

    Raises:
        ConfigError: another scheme, or a malformed URL.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"a file tiles URL is file:///ABSOLUTE/PATH, not {url!r}")
        from overt.log.fs import TileStore

        return TileStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from overt.log.s3 import S3TileStore

        return S3TileStore.from_url(url)
    raise ConfigError(
        f"unsupported tiles URL scheme {parts.scheme!r}: use file:///PATH or s3://BUCKET/PREFIX"
    )


def configured_tiles(directory: Path) -> TileBackend | None:
    """The tile backend a log directory's ``log.json`` names (``"tiles"``), or None
    (the tiles are in DIR/tiles). Raises ConfigError."""
    try:
        config = json.loads((directory / "log.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{directory} is not an overt log: {err}") from err
    url = config.get("tiles") if isinstance(config, dict) else None
    if url is None:
        return None
    if not isinstance(url, str):
        raise ConfigError(f"{directory}/log.json: 'tiles' must be a URL string")
    return open_tiles(url)
