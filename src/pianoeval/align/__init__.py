"""Note-level performance-to-score alignment (parangonar) and expressive deviation features.

* ``score``: load a score (score MIDI or MusicXML, via partitura) into notes + beat/bar grid;
* ``match``: run parangonar's note matchers with a fallback and count matches;
* ``deviations``: per performed note, timing/velocity/articulation/pedal relative to the score;
* ``aggregate``: segment-level summaries (``align_*``) and their merge into the feature table;
* ``batch``: the items of a source and the parallel run over them.
"""
