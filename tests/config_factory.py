"""Configurations for tests: the training configs have no defaults of their own (params.yaml is
their home), so the values a test does not set are given here, once."""
import numpy as np

from pianoeval.fusion.contrastive import ContrastiveConfig
from pianoeval.fusion.train import FusionConfig
from pianoeval.midibert.finetune import FinetuneConfig
from pianoeval.midibert.model import MidiBertConfig
from pianoeval.midibert.pretrain import PretrainConfig
from pianoeval.sequence.model import HierConfig
from pianoeval.sequence.train import TrainConfig
from pianoeval.tier_ranker.model import RankerConfig

SEQUENCE_TRAIN = dict(batch_size=16, lr=2e-3, weight_decay=0.01, max_epochs=40, patience=8,
                      grad_clip=1.0, feature_clip=5.0, seed=0, num_threads=2, device="cpu")
SEQUENCE_MODEL = dict(n_features=6, d_model=64, n_layers=1, n_heads=4, dropout=0.2,
                      hierarchical=True)
# the keys of params.yaml's train_sequence.model and .train
SEQUENCE_MODEL_PARAMS = {k: SEQUENCE_MODEL[k] for k in ("d_model", "n_layers", "n_heads", "dropout")}
SEQUENCE_TRAIN_PARAMS = {k: SEQUENCE_TRAIN[k] for k in ("batch_size", "lr", "weight_decay",
                                                        "max_epochs", "patience", "grad_clip",
                                                        "feature_clip")}
MIDIBERT = dict(vocab_sizes=[4, 68, 92, 35, 99], d_model=256, n_heads=4, n_layers=4, d_ff=1024,
                dropout=0.1, max_len=512, pad_id=0, position="learned")
PRETRAIN = dict(steps=1000, batch_size=8, seq_len=512, window_notes=360, mask_rate=0.15, lr=5e-4,
                min_lr=5e-5, warmup=100, weight_decay=0.01, grad_clip=1.0, checkpoint_every=100,
                augment=True, tempo_bpm=120.0, seed=0, num_threads=1, device="cpu",
                loader_workers=0, dropout=None)
FINETUNE = dict(batch_size=16, lr=3e-4, head_lr=1e-3, weight_decay=0.01, warmup_frac=0.1,
                max_epochs=4, patience=2, grad_clip=1.0, head_dropout=0.1, train_crop=None,
                layer_mix=False, ridge_alphas=tuple(np.logspace(-1, 4, 11)), seed=0,
                n_seeds=1, num_threads=1, device="cpu")


def train_config(**values) -> TrainConfig:
    return TrainConfig(**{**SEQUENCE_TRAIN, **values})


def hier_config(**values) -> HierConfig:
    return HierConfig(**{**SEQUENCE_MODEL, **values})


def midibert_config(**values) -> MidiBertConfig:
    return MidiBertConfig(**{**MIDIBERT, **values})


def pretrain_config(**values) -> PretrainConfig:
    return PretrainConfig(**{**PRETRAIN, **values})


def finetune_config(**values) -> FinetuneConfig:
    return FinetuneConfig(**{**FINETUNE, **values})


CONTRASTIVE = dict(d_shared=128, temperature=0.07, learn_temperature=False, distill_weight=0.0,
                   epochs=100, batch_size=256, lr=1e-3, weight_decay=1e-2, dropout=0.1, seed=0)
FUSION = dict(modalities=("audio", "midi"), soundfonts=("FluidR3_GM", "TimGM6mb"), fusion="gated",
              fusion_kw={}, d_shared=128, head_hidden=256, dropout=0.1, modality_dropout=0.15,
              pretrain_heads=True, pretrain_windows=True, stage1_epochs=300, stage2_epochs=150,
              unfreeze_top_k=1, encoder_lr_factor=0.1, patience=40, lr=1e-3, weight_decay=1e-2,
              loss="mse", huber_delta=1.0, bootstrap_beta=0.8, lds=False, lds_bins=20,
              lds_sigma=2.0, lds_power=0.5, rank_weight=0.0, rank_margin=0.0, rank_pairs=2048,
              ordinal="none", ordinal_levels=7, ordinal_weight=1.0, tier_rank_weight=0.0,
              tier_margin=1.0, tier_pairs=1024, weak_weight=0.0, weak_samples=1024, refit=True,
              n_seeds=1, seed=0)


def contrastive_settings(**values) -> dict:
    """The contrastive_heads settings train_fusion passes on (a dict, as ContrastiveConfig.settings
    returns it)."""
    return {**CONTRASTIVE, **values}


def contrastive_config(**values) -> ContrastiveConfig:
    return ContrastiveConfig(**contrastive_settings(**values))


def fusion_config(**values) -> FusionConfig:
    return FusionConfig(**{**FUSION, **values})


MLP = dict(hidden=256, dropout=0.3, weight_decay=1e-2, lr=1e-3, batch_size=64, max_epochs=300,
           patience=30, refit=True, n_seeds=3, seed=0, clip_to_training_range=True)
RANKER = dict(hidden=64, margin=1.0, lr=0.01, weight_decay=1e-3, epochs=200, seed=0)


def mlp_settings(**values) -> dict:
    """MLPHead's keyword arguments (train_audio.mlp of params.yaml)."""
    return {**MLP, **values}


def make_ranker_config(**values) -> RankerConfig:
    return RankerConfig(**{**RANKER, **values})
