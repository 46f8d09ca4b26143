"""The note-sequence family (stage ``train_sequence``): a Bi-LSTM over per-note features with
hierarchical attention pooling (notes, beats, bars). Read in this order: ``data`` (the notes
table as padded, standardised batches), ``model``, ``train`` (one fold model, early-stopped on
its validation rows), ``variants`` (the named ablations, cross-fitted over the protocols)."""
