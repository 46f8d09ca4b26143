"""The MidiBERT family: a BERT-style encoder over MIDI tokens (``model``), pre-trained with
masked-token prediction on ASAP/MAESTRO and GiantMIDI (``pretrain``, stage ``pretrain_midi``)
and fine-tuned with a regression head (``head``) on PercePiano (``finetune``, stage
``finetune_midi``). Both stages also run under ``torchrun`` (:mod:`pianoeval.distributed`)."""
