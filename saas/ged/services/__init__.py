"""The GED's business rules and every write, by topic.

    intake          files in: size and quota, streamed or resumed, filed as documents/versions
    documents       documents and versions: create, add a version, describe, trash and restore
    fields          document fields as sent (form, JSON, tus metadata), parsed and checked
    access          who sees which document; the accessors that apply it
    search          the full-text index and paged searches
    classification  the filing plan
    retention       DUA, trash purge, bordereaux d'élimination, destruction
    shares          read-only shares with other communes
    quota           per-file limit, quota (used + reserved by uploads), usage counter, reports
    uploads         resumable (tus) uploads: reservation, per-person cap, filing
    integrity       the integrity scrub: every version's bytes against its SHA-256 and size
    extraction      text extraction for the index
    validation      cleaned text, 422 naming the bad fields

Private to the GED: other features go through saas.ged.public.
"""
