"""The audio-only family (stage ``train_audio``): ridge and an MLP head on the pooled audio
embeddings of the renders (read by :func:`pianoeval.audio.encode.load_pooled`). ``model``: the
MLP head and cross-fitting; ``train``: the stage's models and the cross-soundfont check."""
