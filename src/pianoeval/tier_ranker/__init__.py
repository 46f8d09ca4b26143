"""The tier-ranking family (stage ``train_tiers``): a scorer trained so that the cleaner of two
degraded versions of the same passage scores higher. ``model``: the scorer and its fit;
``train``: cross-fitting by work and the ranking report. The tiers themselves are defined by
:mod:`pianoeval.degrade.tiers`."""
