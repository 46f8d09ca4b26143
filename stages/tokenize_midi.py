"""DVC stage `tokenize`: the pre-training corpus as MidiTok tokens, and PercePiano's tokens.

Writes ``data/tokens/``: ``tokenizer.json``, ``files.csv`` (every corpus file: source, work,
held-out flag, notes, tokens, sequences, status), ``corpus.npz`` (the corpus notes, for augmented
batches), ``sequences.npz`` (every file's tokens chunked to ``max_len``), ``excluded.csv``
(PercePiano test segments and corpus files of PercePiano works, with the reason), ``percepiano.npz``
(the labelled segments' tokens: fine-tuning input, never corpus) and ``counts.json`` (copied into
``metrics/pretrain.json``). Not ``tokenize.py``: that would shadow the stdlib module pandas imports.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pianoeval.config import load_config
from pianoeval.logs import setup_logging
from pianoeval.tokens import build
from pianoeval.tokens.corpus import heldout_works, percepiano_test_segments
from pianoeval.tokens.tokenizer import make_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for arg, default in (("params", "params.yaml"), ("raw", "data/raw"),
                         ("splits", "data/splits.csv"), ("out", "data/tokens")):
        parser.add_argument(f"--{arg}", default=default)
    args = parser.parse_args()
    log = setup_logging("tokenize")
    p, raw, out = load_config("tokenize", args.params).model_dump(), Path(args.raw), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = build.read_corpus_table(raw, p["giantmidi_roles"], p["exclude_works"])
    splits = pd.read_csv(args.splits, dtype=str)
    tokenizer, tempo = make_tokenizer(p["tokenizer"]), float(p["tokenizer"]["tempo_bpm"])
    build.save_tokenizer(tokenizer, out / "tokenizer.json")
    corpus = build.tokenize_corpus(table, heldout_works(table, p["heldout_fraction"], p["seed"]),
                                   raw, tokenizer, tempo, p["max_len"], p["min_len"])
    segments = build.tokenize_segments(sorted(splits["segment"]), raw / "percepiano" / "midi",
                                       tokenizer, tempo)  # fine-tuning inputs: never in the corpus
    corpus.files.to_csv(out / "files.csv", index=False)
    np.savez(out / "corpus.npz", **build.corpus_arrays(corpus))
    np.savez(out / "sequences.npz", **build.sequence_arrays(corpus))
    np.savez(out / "percepiano.npz", **build.segment_arrays(segments))
    tests = percepiano_test_segments(splits)
    build.excluded_table(table, tests).to_csv(out / "excluded.csv", index=False)
    leak = build.leak_check(corpus, segments, tests, build.excluded_pitch(table, raw),
                            int(p["leak_check_ngram"]))
    counts = build.corpus_counts(corpus, table, tests, segments, tokenizer, p["tokenizer"]["kind"],
                                 p["max_len"], leak)
    (out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    log.info("corpus: %s", json.dumps({k: counts[k] for k in ("files", "tokens", "sequences", "leak_check")}))


if __name__ == "__main__":
    main()
