"""The storage interface itself, on both backends: a directory, and moto's S3 server."""

from __future__ import annotations

import errno
import hashlib
import os
import urllib.request
from collections.abc import Iterator

import pytest

from app.storage import PART_BYTES, FileSystemStorage, current_storage, storage_at
from tests.storage import Store, random_chunks


def test_an_object_put_as_chunks_reads_back_whole_with_its_sha256_and_size(
        store: Store) -> None:
    chunks = list(random_chunks(PART_BYTES + 3 * 65_536 + 5, chunk=65_536))
    data = b"".join(chunks)
    storage = current_storage()

    stored = storage.put("listings/a/b", iter(chunks))

    assert (stored.key, stored.sha256, stored.size) == (
        "listings/a/b", hashlib.sha256(data).hexdigest(), len(data))
    with storage.open("listings/a/b") as stream:
        assert stream.read() == data
    assert list(store.objects().values()) == [data]


def test_a_link_to_an_object_is_presigned_by_s3_and_left_to_the_service_elsewhere(
        store: Store) -> None:
    storage = current_storage()
    storage.put("listings/a/b", iter([b"rows"]))

    url = storage.presigned_url("listings/a/b", expires_in=60, download_name="rows 六.csv")

    if store.kind == "filesystem":
        assert url is None and storage.local_path("listings/a/b") is not None
    else:
        assert url is not None and storage.local_path("listings/a/b") is None
        with urllib.request.urlopen(url) as answer:
            assert answer.read() == b"rows"
            assert "filename*=UTF-8''rows%20%E5%85%AD.csv" in answer.headers[
                "Content-Disposition"]


def test_a_deleted_object_is_gone_and_deleting_it_again_is_no_error(store: Store) -> None:
    storage = current_storage()
    storage.put("listings/a/b", iter([b"rows"]))

    storage.delete("listings/a/b")
    storage.delete("listings/a/b")

    assert store.objects() == {}


class Refused(Exception):
    pass


def breaking_off(after: int) -> Iterator[bytes]:
    yield from random_chunks(after, chunk=65_536)
    raise Refused("the upload broke off")


@pytest.mark.parametrize("after", [0, 100, PART_BYTES + 100])
def test_chunks_that_raise_leave_nothing_stored(store: Store, after: int) -> None:
    """Nothing under the key, no temporary file, no unfinished multipart upload."""
    with pytest.raises(Refused):
        current_storage().put("listings/a/b", breaking_off(after))

    assert store.objects() == {}


def test_a_failed_write_is_raised_and_leaves_no_file(file_store: Store,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    written = [0]

    def full_disk(handle: int, data: object) -> int:
        if written[0] > 200_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        count = real_write(handle, data)  # type: ignore[arg-type]
        written[0] += count
        return count

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        current_storage().put("listings/a/b", random_chunks(2_000_000, chunk=65_536))

    assert file_store.objects() == {}


@pytest.mark.parametrize("key", ["../escape", "listings/../../etc/passwd", "/absolute",
                                 "listings/a b", ""])
def test_keys_outside_the_stores_own_shape_are_refused(tmp_path: object, key: str) -> None:
    storage = FileSystemStorage(tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        storage.put(key, iter([b"x"]))


@pytest.mark.parametrize("url", ["ftp://host/dir", "s3://", "file://", "artifacts"])
def test_an_unknown_storage_setting_is_refused(url: str) -> None:
    with pytest.raises(RuntimeError, match="ARTIFACT_STORAGE"):
        storage_at(url)
