"""Reading a multipart/form-data body into text fields and temp files, with limits.

Runs in a thread (it writes files). File parts go straight into the image store's temp/
folder while their SHA-256 is computed; text parts are kept in memory, small.
"""

from __future__ import annotations

import attrs
import multipart

from ccl.adapters.web.errors import HTTPError
from ccl.ports import IImageFolder, StorageUnavailable

MAX_TEXT = 4 * 1024 * 1024  # defect_data of a busy strip stays far below this


@attrs.define
class FilePart:
    field: str
    client_filename: str | None
    temp: object  # the TempFile IImageFolder.new_temp made


@attrs.define
class Form:
    texts: dict[str, str] = attrs.field(factory=dict)
    files: list[FilePart] = attrs.field(factory=list)

    def temp_paths(self):
        return [part.temp.path for part in self.files]


def boundary_of(content_type: str | None) -> str:
    if not content_type:
        raise HTTPError(415, "send multipart/form-data", "no Content-Type header")
    kind, options = multipart.parse_options_header(content_type)
    if kind != "multipart/form-data":
        raise HTTPError(415, "send multipart/form-data", f"Content-Type is {kind}")
    boundary = options.get("boundary")
    if not boundary:
        raise HTTPError(400, "malformed multipart body", "the Content-Type has no boundary")
    return boundary


def read_form(content, content_type: str | None, length: int, store: IImageFolder, *,
              max_file_bytes: int, max_files: int) -> Form:
    """Parse the whole body; on any refusal the temp files made so far are removed."""
    boundary = boundary_of(content_type)
    form = Form()
    content.seek(0)
    current_file: FilePart | None = None
    current_text: list[bytes] | None = None
    text_size = 0
    try:
        with multipart.PushMultipartParser(boundary, content_length=length, max_segment_count=16) as parser:
            while not parser.closed:
                chunk = content.read(256 * 1024)
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        if event.filename is not None:
                            if len(form.files) >= max_files:
                                raise HTTPError(400, f"at most {max_files} files per request",
                                                  f"file part {event.name!r} is one too many")
                            current_file = FilePart(event.name, event.filename, store.new_temp())
                            form.files.append(current_file)
                        else:
                            current_text = []
                            text_size = 0
                        segment = event
                    elif event is None:
                        if current_file is not None:
                            current_file.temp.close()
                            current_file = None
                        elif current_text is not None:
                            if segment.name in form.texts:
                                raise HTTPError(400, f"field {segment.name!r} is sent twice")
                            try:
                                form.texts[segment.name] = b"".join(current_text).decode(segment.charset or "utf-8")
                            except (UnicodeDecodeError, LookupError):
                                raise HTTPError(400, f"field {segment.name!r} is not UTF-8 text") from None
                            current_text = None
                    elif current_file is not None:
                        if current_file.temp.size + len(event) > max_file_bytes:
                            raise HTTPError(413, f"a file may have at most {max_file_bytes // (1024 * 1024)} MB",
                                              f"file part {current_file.field!r} is larger")
                        current_file.temp.write(event)
                    elif current_text is not None:
                        text_size += len(event)
                        if text_size > MAX_TEXT:
                            raise HTTPError(413, "a text field is too large", segment.name)
                        current_text.append(event)
                if not chunk:
                    break
    except HTTPError:
        _close_all(form, store)
        raise
    except multipart.ParserLimitReached as error:
        _close_all(form, store)
        raise HTTPError(413, "multipart limits exceeded", str(error)) from None
    except multipart.MultipartError as error:
        _close_all(form, store)
        raise HTTPError(400, "malformed multipart body", str(error)) from None
    except StorageUnavailable:
        _close_all(form, store)
        raise
    except OSError as error:
        _close_all(form, store)
        raise StorageUnavailable(f"cannot write under {store.temp}: {error.strerror or error}") from error
    return form


def _close_all(form: Form, store: IImageFolder) -> None:
    for part in form.files:
        try:
            part.temp.handle.close()
        except OSError:
            pass
    store.discard(form.temp_paths())
