"""The landing check's line reader: a file read a few bytes at a time gives the lines io's
universal newlines give, and its whole-file refusals name the same offsets."""

from __future__ import annotations

import io

import pytest

from volt_assets.defs.landing import csv_files

TEXTS = [
    "id,name\r\n1,a\r\n2,b\r\n",
    "id,name\r1,a\r2,b",  # old Mac line ends, no final break
    'id,name\n1,"two\r\nlines"\n2,ü€😀\n',  # a quoted break; two-, three-, four-byte characters
    "\ufeffid,name\r\n\r\n\r\n1,a\r\n",  # a byte order mark and blank lines
    "   \r\n\r\nid,name\r\n",  # blanks before the header
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("slice_bytes", [1, 2, 3, 5, 64])
def test_lines_read_in_slices_are_the_lines_of_the_whole_text(monkeypatch, text, slice_bytes):
    monkeypatch.setattr(csv_files, "CHECK_SLICE", slice_bytes)
    got = list(csv_files.text_lines(io.BytesIO(text.encode())))
    assert got == list(io.StringIO(text.removeprefix("\ufeff"), newline=""))


@pytest.mark.parametrize("slice_bytes", [1, 4, 64])
def test_refusals_name_what_the_whole_file_shows(monkeypatch, slice_bytes):
    monkeypatch.setattr(csv_files, "CHECK_SLICE", slice_bytes)

    def refusal(body: bytes) -> list[str]:
        with pytest.raises(csv_files.FileRefused) as refused:
            list(csv_files.text_lines(io.BytesIO(body)))
        return refused.value.reasons

    latin1 = "id,name\r\n1,Schütz\r\n".encode("latin-1")
    assert refusal(latin1) == [
        "file: not UTF-8 text (invalid byte at offset 14): save it as CSV UTF-8"
    ]
    assert refusal("id,ü".encode()[:-1] + b",x") == [
        "file: not UTF-8 text (invalid byte at offset 3): save it as CSV UTF-8"
    ]
    assert refusal(b" \r\n \t\r\n") == ["file: empty"]
    assert refusal(b"") == ["file: empty"]
    assert refusal("id".encode("utf-16")) == [
        "file: UTF-16 text (byte order mark), not UTF-8: save it as CSV UTF-8"
    ]
    assert refusal(b"id,name\r\n1,\x00") == ["file: binary content (NUL bytes), not CSV text"]
