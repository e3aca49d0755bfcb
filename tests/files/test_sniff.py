"""Types come from the bytes: programs and active content are refused whatever their name."""

from __future__ import annotations

import io
import zipfile

import pytest

from saas.files import sniff


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
