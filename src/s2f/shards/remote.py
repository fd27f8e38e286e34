"""Small text files (the shard manifest, litdata's ``index.json``) from object storage.

litdata streams the chunks itself; the manifest and index are read here, before litdata is
involved. An fsspec backend is used when one is installed for the URL's scheme (``s3fs``,
``gcsfs``, ``adlfs``); ``s3://`` also works with boto3 alone, which litdata already depends on.
boto3 picks up the usual settings: ``AWS_ENDPOINT_URL`` (MinIO, Ceph, R2, a local test server),
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, profiles; ``storage_options`` (the same dict
litdata takes, e.g. ``{"endpoint_url": ...}``) override them.

Example:
    >>> split_url("s3://bucket/shards/s2f_shards.json")
    ('s3', 'bucket', 'shards/s2f_shards.json')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["RemoteFileNotFound", "allow_plain_http_endpoint", "read_remote_text", "split_url"]


class RemoteFileNotFound(FileNotFoundError):
    """The URL names an object that does not exist (the bucket may or may not exist)."""


def split_url(url: str) -> tuple[str, str, str]:
    """``scheme://bucket/key`` -> ``(scheme, bucket, key)``."""
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    return scheme, bucket, key


def read_remote_text(url: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """The UTF-8 text of one object at ``url``.

    Raises:
        RemoteFileNotFound: The object does not exist.
        ImportError: No reader is installed for the URL's scheme.
        OSError: Any other failure to reach or read the object.
    """
    scheme, bucket, key = split_url(url)
    options = dict(storage_options or {})
    if scheme == "s3" and not _has_fsspec_backend(scheme):
        return _read_s3_with_boto3(bucket, key, options)
    import fsspec

    try:
        with fsspec.open(url, "r", encoding="utf-8", **options) as handle:
            return str(handle.read())
    except FileNotFoundError as err:
        raise RemoteFileNotFound(url) from err


def _has_fsspec_backend(scheme: str) -> bool:
    try:
        import fsspec

        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError):
        return False
    return True


def _read_s3_with_boto3(bucket: str, key: str, options: dict[str, Any]) -> str:
    import boto3
    import botocore.exceptions

    client = boto3.client("s3", **options)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            raise RemoteFileNotFound(f"s3://{bucket}/{key}") from err
        raise OSError(f"s3://{bucket}/{key}: {code or err}") from err
    except botocore.exceptions.BotoCoreError as err:
        raise OSError(f"s3://{bucket}/{key}: {err}") from err
    return bytes(body).decode("utf-8")


def allow_plain_http_endpoint(storage_options: Mapping[str, Any] | None = None) -> bool:
    """Lets litdata's chunk downloads reach an ``http://`` S3 endpoint (MinIO, Ceph or a test server).

    litdata fetches chunks through obstore, which refuses plain HTTP unless told otherwise, and
    litdata passes no option for it; boto3 (manifest, index) has no such rule. The switch is
    flipped only when the configured endpoint itself is ``http://``, so HTTPS setups are untouched.

    Returns:
        Whether the endpoint is plain HTTP (and the switch was set).
    """
    endpoint = str(
        (storage_options or {}).get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ""
    )
    if not endpoint.startswith("http://"):
        return False
    try:
        from litdata.streaming import downloader
    except ImportError:  # pragma: no cover - litdata is a dependency
        return False
    options = getattr(downloader, "_OBSTORE_CLIENT_OPTIONS", None)
    if isinstance(options, dict):
        options["allow_http"] = True
    return True
