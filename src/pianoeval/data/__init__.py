"""Data: ingest, the note-array data model, labels, segment names, splits."""
