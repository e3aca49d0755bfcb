"""Types come from the bytes: programs and active content are refused whatever their name."""

from __future__ import annotations

import io
import zipfile

import pytest

from saas.files import sniff
from tests.files.crafted import crafted_zip


def test_zip_guard_reads_only_the_central_directory():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.xml", b"<a/>" * 10)
    sniff.zip_is_sane(io.BytesIO(out.getvalue()), max_total=10_000, max_ratio=200)


@pytest.mark.parametrize("head, name, code", [
    (b"MZ\x90\x00", "rapport.pdf", "executable_refused"),
    (b"#!/bin/sh\nrm -rf /", "notes.txt", "executable_refused"),
    (b"<!DOCTYPE html><script>", "page.txt", "active_content_refused"),
    (b"", "vide.pdf", "empty_file"),
])
def test_refusals_ignore_the_name(app, head, name, code):
    with pytest.raises(sniff.Refused) as refused:
        sniff.sniff(head, name)
    assert refused.value.code == code


def test_the_name_only_refines_what_the_bytes_say(app):
    assert sniff.sniff(b"a;b\n1;2\n", "budget.csv").content_type == "text/csv; charset=utf-8"
    assert sniff.sniff(b"%PDF-1.7\n", "budget.csv").content_type == "application/pdf"


class CountingFile(io.BytesIO):
    """A BytesIO that counts the bytes read from it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


def _check(fileobj, **limits):
    sniff.zip_is_sane(fileobj, max_total=limits.pop("max_total", 1024 ** 3),
                      max_ratio=limits.pop("max_ratio", 200), **limits)


def test_zip_entry_count_is_read_from_the_zip64_end_record_before_the_directory():
    # 70,000 entries need ZIP64; the directory is 3.3 MB, the check reads only the file's end.
    hostile = crafted_zip(70_000)
    assert zipfile.ZipFile(io.BytesIO(hostile)).infolist()[0].filename == "x.xml"
    counted = CountingFile(hostile)
    with pytest.raises(sniff.Refused) as refused:
        _check(counted)
    assert refused.value.code == "zip_bomb"
    assert "70000 fichiers (au plus 10000)" in refused.value.reason
    assert counted.bytes_read <= 64 * 1024 + 22 + 56


def test_zip_entry_count_from_the_classic_end_record():
    counted = CountingFile(crafted_zip(12_000))
    with pytest.raises(sniff.Refused) as refused:
        _check(counted)
    assert refused.value.code == "zip_bomb" and "12000 fichiers" in refused.value.reason
    assert counted.bytes_read <= 64 * 1024 + 22


def test_a_directory_that_lies_about_its_count_is_refused_in_bounded_reads():
    # The end record says 1 entry; the directory holds 20,000 (zipfile would parse them all).
    huge = CountingFile(crafted_zip(20_000, declared=1))
    with pytest.raises(sniff.Refused) as refused:
        _check(huge)
    assert refused.value.code == "zip_bomb"
    assert huge.bytes_read <= 64 * 1024 + 22
    # Small enough to pass the size test: the walk stops at the limit, whatever was declared.
    small = CountingFile(crafted_zip(1_000, declared=1))
    with pytest.raises(sniff.Refused) as refused:
        _check(small, max_entries=20)
    assert refused.value.code == "zip_bomb" and "21 fichiers (au plus 20)" in refused.value.reason


def test_genuine_zip64_archives_are_read(monkeypatch):
    # CPython writes ZIP64 end records and ZIP64 extra fields once past these limits.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 10)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(5):
            archive.writestr(f"word/part{index}.xml", b"<w:t>bonjour</w:t>" * 20)
    data = out.getvalue()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    _check(io.BytesIO(data))
    with pytest.raises(sniff.Refused) as refused:
        _check(io.BytesIO(data), max_entries=4)
    assert "5 fichiers" in refused.value.reason
    # Sizes are taken from the ZIP64 extra field: their total counts.
    with pytest.raises(sniff.Refused) as refused:
        _check(io.BytesIO(data), max_total=1000)
    assert refused.value.code == "zip_bomb"


def test_a_zip64_bomb_is_measured_by_its_real_sizes(monkeypatch):
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 10)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\x00" * (4 * 1024 * 1024))
    with pytest.raises(sniff.Refused) as refused:
        _check(io.BytesIO(out.getvalue()))
    assert refused.value.code == "zip_bomb" and "compressé" in refused.value.reason


@pytest.mark.parametrize("data", [
    b"PK\x03\x04" + b"\x00" * 200,                       # no end record
    crafted_zip(3)[:-30] + crafted_zip(3)[-22:],         # directory cut short
    b"PK\x05\x06" + b"\x00" * 8 + b"\xff" * 8 + b"\x00\x00",  # directory before the file
])
def test_broken_archives_are_corrupt_not_errors(data):
    with pytest.raises(sniff.Refused) as refused:
        _check(io.BytesIO(data))
    assert refused.value.code == "corrupt_archive"
