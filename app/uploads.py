"""A file uploaded as multipart/form-data, read as a stream: never held whole in memory.

Werkzeug's `request.files` parses the whole body before the view runs, spooling each file to a
temporary file (in memory up to 500 KB): an upload would be written twice and checked against
the storage's limits only once it had all arrived. Here the body is decoded as it is read,
READ_BYTES at a time, by the `multipart` package's sans-IO parser (the one PEP 594 names to
replace the cgi module; it scans for the boundary with bytes.find, several times faster than
werkzeug's own decoder), and the file's bytes go on to the caller (the storage) as they
arrive: memory holds about one read of the body, whatever the file's size. The parser is
strict: a body must start with its boundary (no preamble to read through), part headers are
bounded in size and number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from flask import request
from multipart import MultipartError, MultipartSegment, ParserLimitReached, PushMultipartParser
from werkzeug.http import parse_options_header

from app.errors import DomainError, ValidationFailed

READ_BYTES = 256 * 1024
# What a body may hold beyond its file: the part's headers, the boundaries, a preamble.
FRAMING_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(f"{_TOKEN}/{_TOKEN}")


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "The body must be multipart/form-data"


class MalformedMultipart(DomainError):
    status, code, title = 400, "malformed_multipart", "The body is not valid multipart/form-data"


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "The upload is too large"


class FileUpload:
    """The one file of a multipart/form-data body, in the part named `field`; any other part
    is refused (422), as schemas refuse unknown fields."""

    def __init__(self, stream: IO[bytes], boundary: bytes, *, field: str,
                 max_bytes: int) -> None:
        self._stream, self._boundary = stream, boundary
        self.field, self.max_bytes = field, max_bytes
        self.filename: str | None = None
        self.content_type: str | None = None

    @classmethod
    def from_request(cls, *, field: str, max_bytes: int) -> FileUpload:
        """The request's upload (nothing is read yet); 415 for a body of another type."""
        mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
        boundary = options.get("boundary", "")
        if mimetype != "multipart/form-data" or not boundary:
            raise UnsupportedMediaType(
                f"Send the file as multipart/form-data, in a part named {field!r}.")
        try:
            encoded = boundary.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedMultipart("The multipart boundary must be ASCII.") from None
        # A Content-Length beyond the file's limit is refused before anything is read.
        request.max_content_length = max_bytes + FRAMING_BYTES
        return cls(request.stream, encoded, field=field, max_bytes=max_bytes)

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes as they arrive: 413 past `max_bytes`, 422 for a missing file or
        another part (even after the file), 400 for a body that is not multipart."""
        in_file = seen_file = False
        size = 0
        try:
            with PushMultipartParser(self._boundary, strict=True) as parser:
                while not parser.closed:
                    for event in parser.parse(self._stream.read(READ_BYTES)):
                        if isinstance(event, MultipartSegment):
                            self._start(event, seen_file)
                            in_file = seen_file = True
                        elif event is None:
                            in_file = False
                        elif in_file:
                            size += len(event)
                            if size > self.max_bytes:
                                raise PayloadTooLarge(
                                    f"The file is larger than {self.max_bytes} bytes.",
                                    max_bytes=self.max_bytes)
                            yield event
        except ParserLimitReached as error:
            raise PayloadTooLarge(f"The body's part headers are too large: {error}") from None
        except MultipartError as error:
            raise MalformedMultipart(
                f"The body is not valid multipart/form-data: {error}") from None
        if not seen_file:
            raise ValidationFailed(f"No file in the part {self.field!r}.",
                                   errors={self.field: ["Missing data for required field."]})

    def _start(self, segment: MultipartSegment, seen_file: bool) -> None:
        """A part begins: the file's (its name and type noted), or one refused (422)."""
        if segment.name != self.field or seen_file or segment.filename is None:
            message = ("Send the file as a file part (with a filename)."
                       if segment.name == self.field and not seen_file else "Unknown field.")
            raise ValidationFailed(f"Only one file, in the part {self.field!r}, is accepted.",
                                   errors={segment.name or "_schema": [message]})
        self.filename = _display_name(segment.filename)
        self.content_type = _media_type(segment.content_type)


def _display_name(filename: str) -> str:
    """The name the file is shown and saved under: its last path segment, without control
    characters, at most 255 characters ("upload" when nothing is left)."""
    name = _CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:255] or "upload"


def _media_type(content_type: str | None) -> str:
    mimetype = parse_options_header(content_type or "")[0]
    return mimetype if _MEDIA_TYPE.fullmatch(mimetype) else "application/octet-stream"
