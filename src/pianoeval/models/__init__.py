"""Model families: baselines, audio heads, the hierarchical sequence model, MidiBERT, fusion, tier scorers."""
