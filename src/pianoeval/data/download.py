"""Pinned upstream downloads into the data mirror, only when asked (``pianoeval download``).

The archive's sha256 comes from params.yaml (``ingest.sources.<name>.download.sha256``): an
archive without a pinned digest, or with another one, is refused. The pipeline itself never
downloads: ``ingest`` reads the mirror, a DVC dependency.
"""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
import urllib.request
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

# Upstream archives at the commits named in the data mirror's README. Their digests are pinned in
# params.yaml, not here (they could not be measured from an offline machine). ``layout`` maps a
# path of the mirror's layout to the upstream path it comes from.
UPSTREAM = {
    "percepiano": {
        "url": "https://github.com/JonghoKimSNU/PercePiano/archive/"
        "e672299b8661f63802cd5cd73bb3c76218a13029.zip",
        "layout": {
            "midi": "virtuoso/data/all_2rounds",
            "score_midi": "virtuoso/data/score_midi",
            "score_xml": "virtuoso/data/score_xml",
            "labels/label_2round_mean_reg_19_with0_rm_highstd0.all1202.json":
                "label_2round_mean_reg_19_with0_rm_highstd0.json",
            "labels/total_2rounds.csv": "labels/total_2rounds.csv",
        },
    },
    "asap": {  # MAESTRO performances with their scores (the default "maestro" source)
        "url": "https://github.com/fosfrancesco/asap-dataset/archive/"
        "afc815c75c42e83a79c03feb6da8a35e77d4c6b8.zip",
    },
    "maestro_v3": {  # the full MAESTRO v3 MIDI set: ingest.sources.maestro.download: maestro_v3
        "url": "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/"
        "maestro-v3.0.0-midi.zip",
    },
    "giantmidi": {
        "url": "https://github.com/bytedance/GiantMIDI-Piano/archive/"
        "930d535a3882f301f7dd8b4c1389072e04989037.zip",
        "layout": {".": "midis_for_evaluation"},
    },
}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: Path, sha256: str) -> Path:
    """Download ``url`` to ``dest`` (kept if already there) and check it against ``sha256``;
    a mismatching file is removed and refused (ValueError)."""
    if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise ValueError(f"{url}: no pinned sha256 (got {sha256!r}); refusing to download")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        log.info("downloading %s", url)
        tmp = dest.with_suffix(dest.suffix + ".part")
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
        tmp.replace(dest)
    digest = sha256_file(dest)
    if digest != sha256:
        dest.unlink()
        raise ValueError(f"{dest}: sha256 {digest} does not match the pinned {sha256}; removed")
    return dest


def extract_zip(archive: Path, out_dir: Path) -> Path:
    """Extract a zip, refusing members that would land outside ``out_dir`` (zip-slip) or links."""
    out_dir = out_dir.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = (out_dir / member.filename).resolve()
            if not target.is_relative_to(out_dir):
                raise ValueError(f"{archive}: member {member.filename!r} escapes the target folder")
            if (member.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"{archive}: member {member.filename!r} is a symbolic link")
        zf.extractall(out_dir)
    tops = {Path(n).parts[0] for n in zf.namelist() if Path(n).parts}
    # GitHub archives wrap everything in one <repo>-<commit>/ folder: return that root.
    return out_dir / tops.pop() if len(tops) == 1 else out_dir


def arrange(root: Path, layout: dict[str, str] | None, dest: Path) -> Path:
    """Move the upstream paths of ``layout`` to their mirror paths under ``dest``."""
    if not layout:
        return root
    for mirror_path, upstream_path in layout.items():
        src = root / upstream_path
        if not src.exists():
            raise FileNotFoundError(f"{root}: upstream archive has no {upstream_path}")
        if mirror_path == ".":
            return src
        (dest / mirror_path).parent.mkdir(parents=True, exist_ok=True)
        src.rename(dest / mirror_path)
    return dest


def download_source(name: str, sha256: str, cache_dir: Path, upstream: dict | None = None) -> Path:
    """Fetch, verify and extract the pinned archive ``name``, laid out like the data mirror."""
    upstream = upstream or UPSTREAM
    if name not in upstream:
        raise KeyError(f"unknown archive {name!r} (have: {sorted(upstream)})")
    spec = upstream[name]
    arranged = cache_dir / f"{name}-arranged"
    if arranged.is_dir():
        return arranged
    archive = fetch(spec["url"], cache_dir / f"{name}.zip", sha256)
    extracted = cache_dir / f"{name}-extracted"
    shutil.rmtree(extracted, ignore_errors=True)
    root = arrange(extract_zip(archive, extracted), spec.get("layout"), extracted / "arranged")
    root.rename(arranged)
    return arranged


def download_into_mirror(name: str, spec: dict, mirror: str | Path, cache_dir: Path,
                         upstream: dict | None = None) -> Path:
    """Put source ``name`` (an ``ingest.sources`` entry) at ``<mirror>/<dir>`` from its pinned
    archive (``spec["download"]``: ``archive``, ``sha256``); a folder already there is kept."""
    target = Path(mirror) / spec["dir"]
    if target.is_dir():
        log.info("%s: %s is already there; nothing downloaded", name, target)
        return target
    download = spec.get("download") or {}
    if not download.get("sha256"):
        raise ValueError(f"ingest.sources.{name}.download.sha256: no pinned digest; refusing to "
                         "download an archive that cannot be verified")
    arranged = download_source(download.get("archive", name), download["sha256"], cache_dir, upstream)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(arranged), target)
    return target
