"""MidiTok tokens of performance MIDI and the pre-training corpus built from them."""
