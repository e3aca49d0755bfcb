"""The byte pipeline every feature uses to take in, keep and give back files.

A feature never reads a file whole: bytes go from the client's socket to the commune's bucket
one chunk at a time, typed from their content, hashed (SHA-256) on the way, and are served back
with the same hash checked. Features bring their own rules as parameters (size limit and quota
error, what to file once a file is stored) and keep their own rows; nothing here imports a
feature.

Public functions:

- `sniff.sniff(head, filename)` → `Sniffed`, or `Refused` for programs and active content;
  `sniff.zip_is_sane(fileobj, …)` checks a ZIP's central directory.
- `store.store_stream(tenant, key, stream, *, filename, limit, on_limit, metadata)` and
  `store.store_pieces(tenant, key, pieces, *, filename, metadata)` → `StoredFile`: the one way
  a file enters a bucket (sniffed, written, checked; nothing stays on refusal).
  `store.sniff_head`, `store.refusal`, `store.delete_quietly`, `store.sanitize_filename`.
- `receive.receive_file(tenant, request, *, store_file, read_fields, max_size, csrf_check)` → the stored
  file and its fields, from a streamed multipart/form-data request.
- `serve.serve(tenant, ServedFile, *, inline)` → a streamed response with ETag, 304, one
  Range and a SHA-256 re-check: files up to `ServedFile.verify_whole_below` hashed before the
  first byte (a clean 500 `integrity_error`), larger ones read whole (with or without a
  Range) hashed on the fly (`IntegrityError` cuts the body short).
- `resumable`: tus 1.0.0 — `protocol_headers`, `check_version`, `declared_length`,
  `parse_metadata`, `check_patch_type`, `check_offset`, `offset_headers`, `lost_upload`,
  `receive_pieces`, `pieces`, `delete_pieces`, `sweep_pieces`, `byte_count`.
- `streams`: `StreamingForm`, `FormError`, `HeadThenStream`, `Piece`, `read_head`,
  `RangedObjectFile`.
"""
