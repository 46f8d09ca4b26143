"""Audio encoders behind one interface: ``make_encoder(name, params).encode(y, sr)``.

Every encoder returns a dict of arrays: ``pooled`` (1-D, float32: the fixed-size embedding a
ridge or MLP head reads) and optionally frame sequences (2-D, time first, float16) for a
trainable sequence encoder later; ``feature_names`` names the pooled dimensions and
``config()`` is the JSON written beside the embeddings.

- ``spectral`` (default, no downloaded weights): log-mel and constant-Q spectrograms (librosa).
  Pooled (over the sounding frames, within 60 dB of the loudest): per-band mean and std of
  both, and global descriptors (spectral centroid, flatness, rolloff, RMS dynamics, onset
  strength and rate, duration). Frames: the log-mel and CQT sequences (every frame).
- ``mert``: a frozen ``transformers.AutoModel`` (MERT-v1-95M / 330M, or any HuBERT/wav2vec2
  style model) from a local folder or a hub id already in the local cache; audio resampled to
  the feature extractor's rate, chunked, hidden states of the chosen layers averaged with fixed
  weights (uniform by default), pooled over time (mean and std); bf16 on CUDA.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from pianoeval.audio.checks import validate_audio

log = logging.getLogger(__name__)


class AudioEncoder:
    """Interface: subclasses set ``name`` and implement ``encode`` and ``config``."""

    name = "encoder"
    expected_sr: int | None = None  # input rate the encoder insists on (None: it resamples)
    max_clipped_fraction = 0.01

    def check(self, y, sr, what="audio") -> np.ndarray:
        return validate_audio(y, sr, expected_sr=self.expected_sr, what=what,
                              max_clipped_fraction=self.max_clipped_fraction)

    def encode(self, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def feature_names(self) -> list[str]:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError


# ----------------------------------------------------------------------------- spectral

SPECTRAL_DEFAULTS = {
    "sample_rate": 24000,  # must equal render.sample_rate (checked, never resampled silently)
    "n_fft": 2048,
    "hop_length": 512,  # 21.3 ms at 24 kHz; CQT needs a multiple of 2**(octaves - 1)
    "n_mels": 64,
    "fmin": 27.5,  # A0, the lowest piano key
    "fmax": 12000.0,
    "cqt_bins": 88,  # one bin per piano key from A0
    "cqt_bins_per_octave": 12,
    "amin_db": -100.0,  # dB floor of the log spectrograms (absolute: ref = 1.0, not the max)
    "store_frames": True,  # also keep the log-mel and CQT frame sequences (float16)
    "max_clipped_fraction": 0.01,
}

GLOBAL_DESCRIPTORS = (
    "centroid_mean", "centroid_std", "flatness_mean", "flatness_std", "rolloff_mean",
    "rms_db_mean", "rms_db_std", "rms_db_p10", "rms_db_p50", "rms_db_p90", "rms_db_range",
    "onset_mean", "onset_std", "onset_max", "onset_rate", "duration_sec",
)


class SpectralEncoder(AudioEncoder):
    name = "spectral"

    def __init__(self, **params):
        unknown = set(params) - set(SPECTRAL_DEFAULTS)
        if unknown:
            raise ValueError(f"spectral encoder: unknown parameters {sorted(unknown)}")
        self.p = {**SPECTRAL_DEFAULTS, **params}
        self.expected_sr = int(self.p["sample_rate"])
        self.max_clipped_fraction = float(self.p["max_clipped_fraction"])
        octaves = int(np.ceil(self.p["cqt_bins"] / self.p["cqt_bins_per_octave"]))
        if self.p["hop_length"] % 2 ** (octaves - 1):
            raise ValueError(f"spectral encoder: hop_length {self.p['hop_length']} must be a "
                             f"multiple of {2 ** (octaves - 1)} for a {octaves}-octave CQT")
        import librosa

        self._mel_fb = librosa.filters.mel(sr=self.expected_sr, n_fft=self.p["n_fft"],
                                           n_mels=self.p["n_mels"], fmin=self.p["fmin"],
                                           fmax=self.p["fmax"])

    @property
    def feature_names(self) -> list[str]:
        names = [f"mel{i:02d}_{s}" for s in ("mean", "std") for i in range(self.p["n_mels"])]
        names += [f"cqt{i:02d}_{s}" for s in ("mean", "std") for i in range(self.p["cqt_bins"])]
        return names + list(GLOBAL_DESCRIPTORS)

    def config(self) -> dict:
        return {"encoder": self.name, **self.p, "dim": len(self.feature_names),
                "frames": {"mel": self.p["n_mels"], "cqt": self.p["cqt_bins"]}
                if self.p["store_frames"] else {},
                "frame_rate_hz": self.expected_sr / self.p["hop_length"],
                "feature_names": self.feature_names}

    def encode(self, y, sr) -> dict[str, np.ndarray]:
        import librosa

        y = self.check(y, sr)
        p, floor = self.p, float(self.p["amin_db"])
        amin = 10 ** (floor / 10)
        power = np.abs(librosa.stft(y, n_fft=p["n_fft"], hop_length=p["hop_length"])) ** 2
        mel_db = 10 * np.log10(np.maximum(self._mel_fb @ power, amin))
        cqt = np.abs(librosa.cqt(y, sr=sr, hop_length=p["hop_length"], fmin=p["fmin"],
                                 n_bins=p["cqt_bins"], bins_per_octave=p["cqt_bins_per_octave"]))
        cqt_db = 20 * np.log10(np.maximum(cqt, np.sqrt(amin)))
        n = min(mel_db.shape[1], cqt_db.shape[1])
        mel_db, cqt_db, power = mel_db[:, :n], cqt_db[:, :n], power[:, :n]

        frame_rms = np.sqrt(np.maximum(power.sum(axis=0) * 2 / p["n_fft"] ** 2, 0))
        rms_db = 20 * np.log10(np.maximum(frame_rms, np.sqrt(amin)))
        # statistics over the sounding frames: within 60 dB of the loudest frame (relative, so
        # a gain change shifts every dB statistic by the gain and changes nothing else)
        active = rms_db > rms_db.max() - 60.0
        onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=p["hop_length"])
        onsets = librosa.onset.onset_detect(onset_envelope=onset, sr=sr,
                                            hop_length=p["hop_length"])
        pa = power[:, active]
        centroid = librosa.feature.spectral_centroid(S=pa, sr=sr)[0]
        flatness = librosa.feature.spectral_flatness(S=pa, power=1.0, amin=1e-20)[0]
        rolloff = librosa.feature.spectral_rolloff(S=pa, sr=sr)[0]
        seconds = len(y) / sr
        ra = rms_db[active]
        p10, p50, p90, p5, p95 = np.percentile(ra, [10, 50, 90, 5, 95])
        glob = [centroid.mean(), centroid.std(), flatness.mean(), flatness.std(), rolloff.mean(),
                ra.mean(), ra.std(), p10, p50, p90, p95 - p5,
                onset.mean(), onset.std(), onset.max(), len(onsets) / seconds, seconds]
        ma, ca = mel_db[:, active], cqt_db[:, active]
        pooled = np.concatenate([ma.mean(1), ma.std(1), ca.mean(1), ca.std(1),
                                 np.asarray(glob, float)]).astype(np.float32)
        out = {"pooled": pooled}
        if p["store_frames"]:
            out["frames_mel"] = mel_db.T.astype(np.float16)
            out["frames_cqt"] = cqt_db.T.astype(np.float16)
        return out


# ----------------------------------------------------------------------------- MERT

MERT_DEFAULTS = {
    "model": "m-a-p/MERT-v1-95M",  # a local folder (save_pretrained layout) or a hub id
    "trust_remote_code": False,  # MERT-v1 ships its own modelling code: needs true
    "allow_download": False,  # false: never touch the network (local files / cache only)
    "layers": "all",  # "all" (every hidden state, embeddings included) or a list of indices
    "layer_weights": None,  # None: fixed uniform mean over `layers`; else one weight per layer
    "store_layers": False,  # also keep each layer's pooled stats (for learned weights later)
    "store_frames": False,  # also keep the combined hidden-state sequence (float16)
    "chunk_sec": 10.0,  # long audio is cut into chunks of this length
    "min_chunk_sec": 1.0,  # a shorter last chunk is merged into the one before it
    "batch_size": 4,  # chunks per forward pass
    "device": "cpu",  # cpu | cuda | auto
    "dtype": "float32",  # float32 | bfloat16 (bfloat16 only used on CUDA)
    "max_clipped_fraction": 0.01,
}


class WeightsNotFoundError(FileNotFoundError):
    """Model weights are not on this machine; the message says how to provide them."""


def _how_to_provide(model: str, why: str) -> str:
    repo = model if "/" in model and not Path(model).is_absolute() else "m-a-p/MERT-v1-95M"
    folder = repo.split("/")[-1]
    return (
        f"MERT weights not available: {model!r} ({why}). This machine does not download "
        f"weights. On a machine with internet run\n"
        f"    huggingface-cli download {repo} --local-dir {folder}\n"
        f"  or\n"
        f"    git lfs install && git clone https://huggingface.co/{repo}\n"
        f"copy the folder here (e.g. to models/{folder}) and set encode_audio.mert.model to that "
        f"path (MERT-v1 ships its own modelling code: also set "
        f"encode_audio.mert.trust_remote_code: true). Or use encode_audio.encoder: spectral, "
        f"which needs no weights.")


def resolve_model_source(model: str, allow_download: bool = False) -> str:
    """A local folder, or a hub id whose files are already in the local cache; otherwise
    WeightsNotFoundError at once (no network attempt unless ``allow_download``)."""
    path = Path(model).expanduser()
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        if not path.is_dir():
            raise WeightsNotFoundError(_how_to_provide(model, "no such folder"))
        if not (path / "config.json").is_file():
            raise WeightsNotFoundError(_how_to_provide(model, f"{path} has no config.json"))
        weights = list(path.glob("*.safetensors")) + list(path.glob("*.bin"))
        if not weights:
            raise WeightsNotFoundError(_how_to_provide(model, f"{path} has no weight files "
                                                              "(*.safetensors / *.bin)"))
        return str(path)
    if allow_download and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        return model
    try:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(model, "config.json")
    except Exception as exc:  # an invalid repo id, for instance
        raise WeightsNotFoundError(_how_to_provide(model, f"not a folder, and {exc}")) from exc
    if not isinstance(cached, str):
        raise WeightsNotFoundError(_how_to_provide(
            model, "no such folder, and not in the local Hugging Face cache"))
    return model


class MertEncoder(AudioEncoder):
    name = "mert"

    def __init__(self, **params):
        unknown = set(params) - set(MERT_DEFAULTS)
        if unknown:
            raise ValueError(f"mert encoder: unknown parameters {sorted(unknown)}")
        self.p = {**MERT_DEFAULTS, **params}
        self.max_clipped_fraction = float(self.p["max_clipped_fraction"])
        source = resolve_model_source(str(self.p["model"]), bool(self.p["allow_download"]))
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        local_only = not self.p["allow_download"]
        kwargs = {"trust_remote_code": bool(self.p["trust_remote_code"]),
                  "local_files_only": local_only}
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(source, **kwargs)
            self.model = AutoModel.from_pretrained(source, **kwargs)
        except OSError as exc:
            raise WeightsNotFoundError(_how_to_provide(str(self.p["model"]), str(exc))) from exc
        except ValueError as exc:
            if "trust_remote_code" in str(exc):
                raise ValueError(f"{self.p['model']}: this model ships its own code; set "
                                 "encode_audio.mert.trust_remote_code: true if you trust it"
                                 ) from exc
            raise
        device = self.p["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float32
        if self.p["dtype"] == "bfloat16":
            if device.startswith("cuda"):
                dtype = torch.bfloat16
            else:
                log.warning("mert: bfloat16 is only used on CUDA; running float32 on %s", device)
        self.device, self.dtype = torch.device(device), dtype
        self.model.to(self.device, dtype=dtype).eval().requires_grad_(False)
        self.sample_rate = int(self.extractor.sampling_rate)
        n_states = int(self.model.config.num_hidden_layers) + 1
        layers = self.p["layers"]
        self.layers = list(range(n_states)) if layers == "all" else [int(i) for i in layers]
        if not self.layers or any(not -n_states <= i < n_states for i in self.layers):
            raise ValueError(f"mert: layers {layers} out of range for {n_states} hidden states")
        weights = self.p["layer_weights"]
        if weights is None:
            weights = [1.0] * len(self.layers)
        if len(weights) != len(self.layers):
            raise ValueError(f"mert: {len(weights)} layer_weights for {len(self.layers)} layers")
        w = np.asarray(weights, float)
        self.weights = w / w.sum()
        self.hidden = int(self.model.config.hidden_size)

    @property
    def feature_names(self) -> list[str]:
        return [f"h{i:04d}_{s}" for s in ("mean", "std") for i in range(self.hidden)]

    def config(self) -> dict:
        return {"encoder": self.name, **self.p, "resolved_layers": self.layers,
                "weights": self.weights.tolist(), "sample_rate": self.sample_rate,
                "hidden_size": self.hidden, "dim": 2 * self.hidden,
                "model_type": self.model.config.model_type,
                "device": str(self.device), "torch_dtype": str(self.dtype).replace("torch.", ""),
                "feature_names": self.feature_names}

    def _chunks(self, y: np.ndarray) -> list[np.ndarray]:
        size = max(1, int(self.p["chunk_sec"] * self.sample_rate))
        bounds = list(range(0, len(y), size))
        chunks = [y[b:b + size] for b in bounds]
        if len(chunks) > 1 and len(chunks[-1]) < self.p["min_chunk_sec"] * self.sample_rate:
            last = chunks.pop()
            chunks[-1] = np.concatenate([chunks[-1], last])
        return chunks

    def _forward(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        """Hidden states of equal-length chunks: list over chunks of (layers, T, D) float32."""
        import torch

        inputs = self.extractor(batch, sampling_rate=self.sample_rate, return_tensors="pt")
        values = inputs["input_values"].to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            out = self.model(values, output_hidden_states=True)
        states = torch.stack([out.hidden_states[i] for i in self.layers], dim=1)  # B,L,T,D
        return list(states.float().cpu().numpy())

    def encode(self, y, sr) -> dict[str, np.ndarray]:
        import librosa

        y = self.check(y, sr)
        if sr != self.sample_rate:
            y = librosa.resample(y, orig_sr=sr, target_sr=self.sample_rate, res_type="soxr_hq")
        chunks = self._chunks(y)
        per_chunk: list[np.ndarray] = []
        by_len: dict[int, list[int]] = {}
        for i, c in enumerate(chunks):
            by_len.setdefault(len(c), []).append(i)
        results: dict[int, np.ndarray] = {}
        for length, idx in by_len.items():
            for s in range(0, len(idx), int(self.p["batch_size"])):
                part = idx[s:s + int(self.p["batch_size"])]
                for i, h in zip(part, self._forward([chunks[i] for i in part])):
                    results[i] = h
        per_chunk = [results[i] for i in range(len(chunks))]
        states = np.concatenate(per_chunk, axis=1)  # L, T, D
        combined = np.tensordot(self.weights, states, axes=1)  # T, D
        out = {"pooled": np.concatenate([combined.mean(0), combined.std(0)]).astype(np.float32)}
        if self.p["store_layers"]:
            out["layers_pooled"] = np.concatenate([states.mean(1), states.std(1)], axis=1
                                                  ).astype(np.float32)
        if self.p["store_frames"]:
            out["frames_hidden"] = combined.astype(np.float16)
        return out


# ----------------------------------------------------------------------------- factory, I/O

ENCODERS = {"spectral": SpectralEncoder, "mert": MertEncoder}


def make_encoder(name: str, params: dict | None = None) -> AudioEncoder:
    """An encoder by name with its parameter block (``encode_audio.<name>``)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown audio encoder {name!r} (have: {sorted(ENCODERS)})")
    return ENCODERS[name](**(params or {}))


# The ``pooled`` vector of every encoded file, one row per index.csv row with status ok, in the
# index's order (``audio.encode.write_pooled``): the models' one input, so that DVC hashes one
# file for each of their stages rather than thousands.
POOLED_FILE = "pooled.safetensors"


def save_embedding(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def load_embedding(path: str | Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        return {k: fh.get_tensor(k) for k in (keys or fh.keys())}


def write_config(folder: str | Path, config: dict) -> Path:
    path = Path(folder) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2, default=str) + "\n")
    return path
