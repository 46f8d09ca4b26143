"""pianoeval.provenance, and the pre-training checkpoints keyed by it."""
import sys
import types

from pianoeval.midibert import pretrain
from pianoeval.provenance import loaded_code_digest


def test_the_digest_follows_the_source_of_every_loaded_pianoeval_module(tmp_path, monkeypatch):
    source = tmp_path / "probe.py"
    source.write_text("X = 1\n")
    probe = types.ModuleType("pianoeval._probe")
    probe.__file__ = str(source)
    monkeypatch.setitem(sys.modules, "pianoeval._probe", probe)
    before = loaded_code_digest()
    assert loaded_code_digest() == before
    source.write_text("X = 2\n")
    assert loaded_code_digest() != before
    monkeypatch.delitem(sys.modules, "pianoeval._probe")
    assert loaded_code_digest() not in (before,)
    assert loaded_code_digest(("numpy",)) != loaded_code_digest(("numpy", "torch"))


def test_a_checkpoint_of_other_code_is_not_resumed(monkeypatch):
    """The fingerprint a checkpoint is resumed by changes with the code, not only the settings."""
    first = pretrain.fingerprint({"steps": 10})
    assert pretrain.fingerprint({"steps": 10}) == first
    monkeypatch.setattr(pretrain, "loaded_code_digest", lambda: "other code")
    assert pretrain.fingerprint({"steps": 10}) != first
