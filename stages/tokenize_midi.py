"""DVC stage `tokenize`: the pre-training corpus as MidiTok tokens, and PercePiano's tokens.

(The script is not called ``tokenize.py``: that would shadow the standard library module of the
same name, which pandas imports.)

Writes ``data/tokens/``: ``tokenizer.json`` (the MidiTok vocabulary and settings), ``files.csv``
(every corpus file: source, work, held-out flag, notes, tokens, sequences, status),
``corpus.npz`` (the corpus notes, for augmented batches), ``sequences.npz`` (every file's tokens
chunked to ``max_len``), ``excluded.csv`` (PercePiano test segments and corpus files dropped as
PercePiano works, with the reason), ``percepiano.npz`` (the labelled segments' tokens: fine-tuning
input, never corpus) and ``counts.json`` (copied into ``metrics/pretrain.json`` by pretrain_midi).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pianoeval.data.midi import NOTE_DTYPE, MidiError, read_midi
from pianoeval.params import load_params
from pianoeval.tokens.corpus import (corpus_table, giantmidi_works, heldout_works, ngram_overlap,
                                     percepiano_test_segments)
from pianoeval.tokens.tokenizer import chunk, encode, make_tokenizer

log = logging.getLogger("tokenize")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--splits", default="data/splits.csv")
    parser.add_argument("--out", default="data/tokens")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = load_params("tokenize", args.params)
    raw, out = Path(args.raw), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    mapping = raw / "giantmidi" / "groundtruth_maestro_giantmidi-piano.csv"
    giant_map = giantmidi_works(pd.read_csv(mapping, sep="\t")) if mapping.is_file() else {}
    table = corpus_table(pd.read_csv(raw / "maestro" / "manifest.csv"),
                         pd.read_csv(raw / "giantmidi" / "manifest.csv"), giant_map,
                         p["giantmidi_roles"], p["exclude_works"])
    heldout = heldout_works(table, p["heldout_fraction"], p["seed"])
    splits = pd.read_csv(args.splits, dtype=str)
    tests = percepiano_test_segments(splits)

    tokenizer = make_tokenizer(p["tokenizer"])
    if max(len(v) for v in (tokenizer.vocab if tokenizer.is_multi_voc else [tokenizer.vocab])) >= 2**15:
        raise ValueError("a vocabulary of 32,768 tokens or more does not fit the int16 id files")
    tokenizer.save(out / "tokenizer.json")
    tempo = float(p["tokenizer"]["tempo_bpm"])

    kept = table[table["excluded"] == ""].reset_index(drop=True)
    kept["heldout"] = kept["work"].isin(heldout)
    status, n_tokens, n_seqs, notes_parts, seq_parts, seq_file = [], [], [], [], [], []
    start = time.perf_counter()
    for i, row in tqdm(list(kept.iterrows()), desc="tokenize corpus", mininterval=10):
        path = raw / row["source"] / row["file"]
        try:
            perf = read_midi(path)
            ids = encode(tokenizer, perf, tempo)
        except (MidiError, ValueError, RuntimeError) as exc:  # counted and skipped, never fatal
            log.warning("skipping %s: %s", path, exc)
            status.append("corrupt"), n_tokens.append(0), n_seqs.append(0)
            notes_parts.append(np.empty(0, NOTE_DTYPE))
            continue
        pieces = chunk(ids, p["max_len"], p["min_len"])
        status.append("ok"), n_tokens.append(len(ids)), n_seqs.append(len(pieces))
        notes_parts.append(perf.notes)
        seq_parts += pieces
        seq_file += [i] * len(pieces)
    seconds = time.perf_counter() - start
    kept["n_notes"] = [len(n) for n in notes_parts]
    kept["status"], kept["n_tokens"], kept["n_sequences"] = status, n_tokens, n_seqs
    kept.to_csv(out / "files.csv", index=False)
    offsets = np.concatenate([[0], np.cumsum([len(n) for n in notes_parts])])
    np.savez(out / "corpus.npz", notes=np.concatenate(notes_parts), offsets=offsets)
    seq_lengths = np.array([len(s) for s in seq_parts])
    # int16 ids: every vocabulary is far below 32,767 tokens, and the file is 4x smaller
    np.savez(out / "sequences.npz", ids=np.concatenate(seq_parts).astype(np.int16),
             offsets=np.concatenate([[0], np.cumsum(seq_lengths)]), file_index=np.array(seq_file),
             heldout=kept["heldout"].to_numpy()[np.array(seq_file, dtype=int)])
    log.info("tokenised %d files (%d corrupt) in %.0f s: %.1f files/s, %.0f notes/s",
             len(kept), status.count("corrupt"), seconds, len(kept) / seconds,
             kept["n_notes"].sum() / seconds)

    # PercePiano: fine-tuning inputs only (the corpus never reads them)
    seg_names, seg_ids, seg_pitch = [], [], []
    for seg in tqdm(sorted(splits["segment"]), desc="tokenize percepiano", mininterval=10):
        perf = read_midi(raw / "percepiano" / "midi" / f"{seg}.mid")
        seg_names.append(seg)
        seg_ids.append(encode(tokenizer, perf, tempo))
        seg_pitch.append(perf.notes["pitch"])
    np.savez(out / "percepiano.npz", segments=np.array(seg_names),
             ids=np.concatenate(seg_ids).astype(np.int16),
             offsets=np.concatenate([[0], np.cumsum([len(s) for s in seg_ids])]))

    # what was kept out, and a content check that the test passages are not in the corpus
    excluded = pd.concat([
        pd.DataFrame({"kind": "percepiano_test_segment", "name": tests["segment"],
                      "reason": "test set of " + tests["protocols"]}),
        pd.DataFrame({"kind": "corpus_file", "name": table.loc[table["excluded"] != "", "source"]
                      + "/" + table.loc[table["excluded"] != "", "file"],
                      "reason": table.loc[table["excluded"] != "", "excluded"]})], ignore_index=True)
    excluded.to_csv(out / "excluded.csv", index=False)
    is_test = np.isin(seg_names, tests["segment"])
    test_pitch = [s for s, t in zip(seg_pitch, is_test) if t]
    n = int(p["leak_check_ngram"])
    overlap = ngram_overlap([n_["pitch"] for n_ in notes_parts], test_pitch, n)
    dropped = [read_midi(raw / s / f).notes["pitch"] for s, f in
               zip(table.loc[table["excluded"] != "", "source"], table.loc[table["excluded"] != "", "file"])]
    overlap_dropped = ngram_overlap(dropped, test_pitch, n) if dropped else np.zeros(len(test_pitch))

    ok = kept[kept["status"] == "ok"]
    counts = {
        "tokenizer": p["tokenizer"]["kind"], "vocab_sizes": [len(v) for v in tokenizer.vocab]
        if tokenizer.is_multi_voc else [len(tokenizer.vocab)],
        "files": int(len(ok)), "files_corrupt": status.count("corrupt"),
        "files_excluded_percepiano_works": int((table["excluded"] != "").sum()),
        "percepiano_test_segments_excluded": int(len(tests)),
        "works": int(ok["work"].nunique()), "heldout_works": int(ok.loc[ok["heldout"], "work"].nunique()),
        "notes": int(ok["n_notes"].sum()), "tokens": int(ok["n_tokens"].sum()),
        "sequences": int(len(seq_parts)), "max_len": int(p["max_len"]),
        "train": {"files": int((~ok["heldout"]).sum()),
                  "tokens": int(ok.loc[~ok["heldout"], "n_tokens"].sum()),
                  "sequences": int(ok.loc[~ok["heldout"], "n_sequences"].sum())},
        "heldout": {"files": int(ok["heldout"].sum()),
                    "tokens": int(ok.loc[ok["heldout"], "n_tokens"].sum()),
                    "sequences": int(ok.loc[ok["heldout"], "n_sequences"].sum())},
        "by_source": {s: {"files": int(len(g)), "tokens": int(g["n_tokens"].sum())}
                      for s, g in ok.groupby("source")},
        "percepiano_segments": {"segments": len(seg_names),
                                "tokens": int(sum(len(s) for s in seg_ids)),
                                "longer_than_max_len": int(sum(len(s) > p["max_len"] for s in seg_ids))},
        "leak_check": {"ngram": n,
                       "test_overlap_with_corpus_mean": round(float(overlap.mean()), 4),
                       "test_overlap_with_corpus_max": round(float(overlap.max()), 4),
                       "test_overlap_with_excluded_files_mean": round(float(overlap_dropped.mean()), 4),
                       "test_overlap_with_excluded_files_max": round(float(overlap_dropped.max()), 4)},
    }
    (out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    log.info("corpus: %s", json.dumps({k: counts[k] for k in ("files", "tokens", "sequences", "leak_check")}))


if __name__ == "__main__":
    main()
