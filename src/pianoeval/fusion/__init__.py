"""The audio+MIDI family: fixed audio and MIDI vectors, contrastively aligned projection heads,
a fusion operator and a trunk with point, ordinal and ranking heads.

Read in this order: ``data`` (the inputs: labelled segments, degraded samples, ASAP window
pairs), ``model`` (heads, fusion operators, ``FusionRegressor``), ``losses``, ``contrastive``
(InfoNCE pre-training of the heads), ``train`` (one fold model; cross-fitting over the
protocols), ``variants`` (the named models of the ``train_fusion`` stage, written out) and
``contrastive_heads`` (the ``contrastive_heads`` stage: retrieval on held-out works).
"""
