"""Where data artifacts live: one small interface, a filesystem and an S3 backend.

`ARTIFACT_STORAGE` chooses the backend: `file://<directory>` keeps each object as a file under
the directory (the single-machine default, under instance/), `s3://<bucket>[/<prefix>]` keeps
it in any S3-compatible store through boto3 (`S3_ENDPOINT_URL` names one that is not AWS;
credentials and region come from boto3's usual sources, the AWS_* variables among them).

Both backends take an object as a stream of chunks and compute its SHA-256 and size on the
way, so no object is ever held whole in memory: the filesystem writes a temporary file beside
the final one, flushes it to disk and renames it into place (a reader never sees half a file,
a crash never leaves one under the key); S3 receives it as a multipart upload of parts of
PART_BYTES, aborted if the stream fails. Objects are never public: the directory is not served
by anything, and a buyer reaches an object only through a short-lived link, an S3 presigned
URL or, for the filesystem, a link the service signs and serves itself (listings.downloads).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote, urlsplit

from flask import current_app

log = logging.getLogger(__name__)

# S3's smallest part but the last: the most a multipart upload holds in memory at once.
PART_BYTES = 5 * 1024 * 1024
# Keys are the service's own (listings/<id>/<id>): letters, digits and / _ . - only, no "..".
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,499}")


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: its key, the SHA-256 (lowercase hex) and size of its bytes."""

    key: str
    sha256: str
    size: int


class Storage(ABC):
    """Where the artifacts' bytes are kept."""

    @abstractmethod
    def put(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        """Store the chunks under `key`, hashing them as they pass. If the chunks raise
        (the upload is refused or breaks off), nothing is left stored and the error goes on."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """The object's bytes, read as a stream."""

    def local_path(self, key: str) -> Path | None:
        """The object's file on this machine, when there is one (sent with range support)."""
        return None

    @abstractmethod
    def presigned_url(self, key: str, *, expires_in: int, download_name: str) -> str | None:
        """A link that serves the object for `expires_in` seconds without further
        credentials, or None when the store has no such links (the service serves it)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is not an error."""


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class FileSystemStorage(Storage):
    """Each object a file under one directory, readable by the service's user alone."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Beside the final file (a rename within one file system is atomic), mode 0600.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        digest, file = hashlib.sha256(), _File(handle)
        try:
            # This thread receives and decodes the upload; two more hash and write it
            # (hashlib and os.write release the GIL), so the three steps overlap.
            with _Worker(digest.update) as hashing, _Worker(file.write) as writing:
                for chunk in chunks:
                    hashing.put(chunk)
                    writing.put(chunk)
            os.fsync(handle)
            os.close(handle)
            os.replace(temporary, path)
        except BaseException:
            with suppress(OSError):
                os.close(handle)
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_directory(path.parent)  # the rename itself survives a crash
        return StoredObject(key, digest.hexdigest(), file.size)

    def open(self, key: str) -> IO[bytes]:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def presigned_url(self, key: str, *, expires_in: int, download_name: str) -> str | None:
        return None

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self._path(key).unlink()


class _Worker:
    """One step applied to every chunk, in order, on a thread of its own; at most DEPTH
    chunks wait for it. Its error is raised to the producer at the next chunk, or at the
    end of the block."""

    DEPTH = 4

    def __init__(self, step: Callable[[bytes], object]) -> None:
        self.step = step
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.DEPTH)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Worker:
        self.thread.start()
        return self

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:  # after an error, only drain: the producer never blocks
                try:
                    self.step(chunk)
                except BaseException as error:
                    self.error = error

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


class _File:
    """Writes to a file descriptor; every WRITEBACK_BYTES, asks the kernel to start writing
    them to disk (Linux starts writeback of dirty pages on POSIX_FADV_DONTNEED), so the final
    fsync waits for little and a large upload does not fill the page cache."""

    WRITEBACK_BYTES = 32 * 1024 * 1024

    def __init__(self, handle: int) -> None:
        self.handle, self.size, self.advised = handle, 0, 0

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.handle, view):]
        self.size += len(chunk)
        if self.size - self.advised >= self.WRITEBACK_BYTES and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.handle, self.advised, self.size - self.advised,
                             os.POSIX_FADV_DONTNEED)
            self.advised = self.size


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class S3Storage(Storage):
    """Objects in one bucket (under an optional key prefix) of an S3-compatible store."""

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket, self.prefix = bucket, prefix.strip("/")
        # Path-style addressing reaches stores on a plain host:port (MinIO, Ceph, moto);
        # AWS itself takes either.
        config = BotoConfig(signature_version="s3v4", retries={"mode": "standard"},
                            s3={"addressing_style": "path" if endpoint_url else "auto"})
        self.client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_checked(key)}" if self.prefix else _checked(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        """One PUT for an object smaller than a part; a multipart upload otherwise, each part
        sent as soon as it is full, so memory holds one part whatever the object's size."""
        name = self._key(key)
        digest, size = hashlib.sha256(), 0
        part, filled = bytearray(PART_BYTES), 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    taken = min(len(view), PART_BYTES - filled)
                    part[filled:filled + taken] = view[:taken]
                    filled += taken
                    view = view[taken:]
                    if filled == PART_BYTES:
                        if upload_id is None:
                            upload_id = self.client.create_multipart_upload(
                                Bucket=self.bucket, Key=name)["UploadId"]
                        parts.append(self._upload_part(name, upload_id, len(parts) + 1, part))
                        filled = 0
            del part[filled:]  # the last part: what was filled of the buffer, in place
            if upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=part)
            else:
                if filled:
                    parts.append(self._upload_part(name, upload_id, len(parts) + 1, part))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id,
                    MultipartUpload={"Parts": parts})
        except BaseException:
            if upload_id is not None:
                with suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=name,
                                                       UploadId=upload_id)
            raise
        return StoredObject(key, digest.hexdigest(), size)

    def _upload_part(self, name: str, upload_id: str, number: int,
                     body: bytearray) -> dict[str, Any]:
        answer = self.client.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                         PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def open(self, key: str) -> IO[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return cast(IO[bytes], body)

    def presigned_url(self, key: str, *, expires_in: int, download_name: str) -> str | None:
        url: str = self.client.generate_presigned_url("get_object", ExpiresIn=expires_in, Params={
            "Bucket": self.bucket, "Key": self._key(key),
            "ResponseContentDisposition": attachment(download_name)})
        return url

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def attachment(filename: str) -> str:
    """A Content-Disposition that saves the file under its name (RFC 6266, any script)."""
    fallback = filename.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def storage_at(url: str, *, endpoint_url: str | None = None) -> Storage:
    """The backend an ARTIFACT_STORAGE value names."""
    parts = urlsplit(url)
    if parts.scheme == "file" and (parts.netloc or parts.path):
        return FileSystemStorage(Path(parts.netloc + parts.path))
    if parts.scheme == "s3" and parts.netloc:
        return S3Storage(parts.netloc, prefix=parts.path, endpoint_url=endpoint_url)
    raise RuntimeError(f"ARTIFACT_STORAGE must be file://<directory> or s3://<bucket>, "
                       f"not {url!r}")


def current_storage() -> Storage:
    """The application's storage as configured now (built once per setting: a boto3 client
    is thread-safe and slow to build)."""
    settings = (current_app.config["ARTIFACT_STORAGE"], current_app.config["S3_ENDPOINT_URL"])
    cached = current_app.extensions.get("artifact_storage")
    if cached is None or cached[0] != settings:
        cached = (settings, storage_at(settings[0], endpoint_url=settings[1]))
        current_app.extensions["artifact_storage"] = cached
    storage: Storage = cached[1]
    return storage
