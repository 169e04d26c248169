"""Tiles, entry bundles and the published checkpoint on S3-compatible object storage.

The layout is the one c2sp.org/tlog-tiles serves, under a key prefix, so the
bucket (or a CDN in front of it) can serve the log to clients directly::

    s3://BUCKET/PREFIX/checkpoint
    s3://BUCKET/PREFIX/tile/<L>/<N>[.p/<W>]
    s3://BUCKET/PREFIX/tile/entries/<N>[.p/<W>]

Crash consistency (the same rule as the filesystem backend): :meth:`S3TileStore.write_batch`
returns only once every PUT has succeeded (S3 acknowledges a PUT once the
object is durably stored, and reads after it see it), and the log uploads the
checkpoint object only after the batch returned. So no reader ever sees a
checkpoint before every tile it commits to. Tiles and bundles are immutable
once a checkpoint covers them: they carry ``Cache-Control: public,
max-age=31536000, immutable``; the checkpoint ``public, max-age=2``.

The log's signed checkpoint (the compare-and-swap truth) is not here: it stays
with the :class:`~overt.log.backend.CheckpointLock` (``DIR/checkpoint``).

Nothing here is specific to one S3 implementation: plain GetObject and
PutObject through boto3, an optional ``endpoint`` for S3-compatible services.
Network and service failures are raised as :class:`~overt.errors.LogError`
(the log then re-reads its state and retries on the next write), a missing
object as :class:`~overt.errors.NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

from overt.errors import ConfigError, LogError, NotFoundError

__all__ = ["S3TileStore"]

IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_CACHE = "public, max-age=2"
# Uploads run in parallel: each PUT is a round trip, most of it waiting.
_UPLOAD_THREADS = 16


def _key_part(relpath: str) -> str:
    parts = relpath.split("/")
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise NotFoundError(f"no such object: {relpath}")
    return relpath


class S3TileStore:
    """A :class:`~overt.log.backend.TileBackend` on one bucket and key prefix.

    Raises:
        ConfigError: boto3 is not installed (``pip install 'overt[s3]'``).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as err:
                raise ConfigError("s3:// tiles need boto3: pip install 'overt[s3]'") from err
            config = Config(max_pool_connections=_UPLOAD_THREADS, retries={"max_attempts": 3})
            client = boto3.client(
                "s3", endpoint_url=endpoint, region_name=region or "us-east-1", config=config
            )
        self.client = client
        self._pool = ThreadPoolExecutor(_UPLOAD_THREADS, thread_name_prefix="overt-s3")

    @classmethod
    def from_url(cls, url: str) -> S3TileStore:
        """``s3://BUCKET/PREFIX?endpoint=URL&region=NAME``. Raises ConfigError."""
        parts = urlsplit(url)
        query = parse_qs(parts.query, strict_parsing=False)
        unknown = set(query) - {"endpoint", "region"}
        if parts.scheme != "s3" or not parts.netloc or unknown:
            raise ConfigError(
                "an S3 tiles URL is s3://BUCKET/PREFIX?endpoint=URL&region=NAME"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
            )
        endpoint = query.get("endpoint", [None])[-1]
        region = query.get("region", [None])[-1]
        return cls(parts.netloc, parts.path, endpoint=endpoint, region=region)

    def _key(self, relpath: str) -> str:
        relpath = _key_part(relpath)
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def read(self, relpath: str, /) -> bytes:
        """The object at ``relpath``. Raises NotFoundError, LogError."""
        key = self._key(relpath)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            data: bytes = response["Body"].read()
        except Exception as err:
            raise _error(err, relpath) from err
        return data

    def write_batch(self, items: Iterable[tuple[str, bytes]], /) -> None:
        """Upload tiles and bundles in parallel; returns once every PUT succeeded.

        Raises LogError (some objects may be stored then: never one a signed
        checkpoint covers, the log writes new tiles only).
        """
        jobs = [(self._key(path), data) for path, data in items]
        futures = [self._pool.submit(self._put, key, data, IMMUTABLE) for key, data in jobs]
        failure: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as err:  # wait for every upload before reporting
                failure = failure or err
        if failure is not None:
            raise _error(failure, "a tile batch") from failure

    def write_checkpoint(self, note: bytes, /) -> None:
        """Upload the published checkpoint (after its tiles). Raises LogError."""
        try:
            self._put(self._key("checkpoint"), note, CHECKPOINT_CACHE)
        except Exception as err:
            raise _error(err, "checkpoint") from err

    def _put(self, key: str, data: bytes, cache: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            CacheControl=cache,
            ContentType="text/plain; charset=utf-8"
            if cache == CHECKPOINT_CACHE
            else "application/octet-stream",
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _error(err: BaseException, what: str) -> LogError:
    """A boto3/botocore failure as the log's error: NotFoundError for a missing object."""
    response = getattr(err, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code in ("NoSuchKey", "404", "NotFound"):
        return NotFoundError(f"no such object: {what}")
    if isinstance(err, LogError):
        return err
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return LogError(f"object storage: cannot access {what}: {reason}")
