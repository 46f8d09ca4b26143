"""Audio: rendering MIDI with FluidSynth, augmentation, audio encoders and checks."""
