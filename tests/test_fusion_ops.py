"""Fusion operators, modality dropout, the fusion regressor and its staged unfreezing."""
import pytest
import torch

from pianoeval.fusion.model import (FUSIONS, CrossAttentionFusion, FusionRegressor, ModalityDropout,
                                    ProjectionHead, make_fusion, param_groups)

D = 32                      # small shared width: the whole file runs in a few seconds
KW = {"cross_attention": {"n_tokens": 4, "n_heads": 2}}
D_AUDIO, D_MIDI = 24, 12
PRESENT = torch.tensor([[True, True], [True, False], [False, True], [False, False]])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: a second intra-op thread only adds contention on a shared CPU (2x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def fusion(name):
    torch.manual_seed(0)
    return make_fusion(name, D, **KW.get(name, {})).eval()


def model(fusion="gated", **kw):
    torch.manual_seed(0)
    kw.setdefault("fusion_kw", KW.get(fusion))
    return FusionRegressor(D_AUDIO, D_MIDI, d_shared=D, fusion=fusion, head_hidden=16, **kw).eval()


def inputs(B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D_AUDIO, generator=g), torch.randn(B, D_MIDI, generator=g)


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_operator_shape(name):
    f = fusion(name)
    out = f(torch.randn(4, D), torch.randn(4, D), PRESENT)
    expected = {"concat": 2 * D, "cross_attention": 2 * D // 4}.get(name, D)
    assert f.out_dim == expected and out.shape == (4, expected)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_operator_ignores_missing_modality(name):
    f = fusion(name)
    a, m = torch.randn(4, D), torch.randn(4, D)
    out = f(a, m, PRESENT)
    # rows 1 and 3 lack MIDI, rows 2 and 3 lack audio: changing those inputs changes nothing
    m2, a2 = m.clone(), a.clone()
    m2[[1, 3]] = torch.randn(2, D) * 10
    a2[[2, 3]] = float("nan")
    torch.testing.assert_close(f(a2, m2, PRESENT), out)
    # while a present modality does matter
    assert not torch.allclose(f(a + 1, m, PRESENT)[0], out[0])


def test_gated_forces_gate_to_the_present_modality():
    f = fusion("gated")
    a, m = torch.randn(4, D), torch.randn(4, D)
    out = f(a, m, PRESENT)
    torch.testing.assert_close(out[1], torch.tanh(f.w_a(a[1])))
    torch.testing.assert_close(out[2], torch.tanh(f.w_m(m[2])))


def test_film_starts_as_identity_and_missing_midi_is_identity():
    f = fusion("film")
    a, m = torch.randn(4, D), torch.randn(4, D)
    torch.testing.assert_close(f(a, m, PRESENT)[:2], a[:2])
    torch.nn.init.normal_(f.film.weight)
    torch.nn.init.normal_(f.film.bias)
    torch.testing.assert_close(f(a, m, PRESENT)[1], a[1])      # MIDI missing: untouched audio
    assert not torch.allclose(f(a, m, PRESENT)[0], a[0])


def test_lmf_missing_modality_uses_bias_row():
    f = fusion("lmf")
    a, m = torch.randn(4, D), torch.randn(4, D)
    fa = torch.cat([a[1], torch.ones(1)]) @ f.factor_a         # (rank, out)
    expected = (f.rank_weight[:, None] * fa * f.factor_m[:, -1]).sum(0) + f.bias
    torch.testing.assert_close(f(a, m, PRESENT)[1], expected)


def test_cross_attention_rejects_bad_widths():
    with pytest.raises(ValueError, match="n_tokens"):
        CrossAttentionFusion(30, n_tokens=8)
    with pytest.raises(ValueError, match="n_heads"):
        CrossAttentionFusion(24, n_tokens=4, n_heads=4)        # width 6


def test_make_fusion_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="cross_attention.*film.*gated"):
        make_fusion("sum", D)


def test_projection_head_unit_norm():
    z = ProjectionHead(D_AUDIO, D, hidden=20, dropout=0.1)(torch.randn(8, D_AUDIO))
    assert z.shape == (8, D)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(8))


# ----------------------------------------------------------------------------- modality dropout


def test_modality_dropout_rate():
    n, p = 20_000, 0.2
    md = ModalityDropout(p, generator=torch.Generator().manual_seed(1)).train()
    out = md(torch.ones(n, 2, dtype=torch.bool))
    dropped = ~out
    assert not (dropped[:, 0] & dropped[:, 1]).any()               # never both
    assert abs(dropped.any(1).float().mean().item() - p) < 0.01
    for col in range(2):                                          # audio and MIDI equally often
        assert abs(dropped[:, col].float().mean().item() - p / 2) < 0.01


def test_modality_dropout_leaves_single_rows_and_eval_alone():
    present = PRESENT.repeat(2000, 1)
    md = ModalityDropout(0.5, generator=torch.Generator().manual_seed(0)).train()
    out = md(present)
    single = present.sum(1) < 2
    assert torch.equal(out[single], present[single])
    assert (out[~single].sum(1) >= 1).all() and not torch.equal(out, present)
    assert torch.equal(md.eval()(present), present)
    with pytest.raises(ValueError):
        ModalityDropout(1.5)
    with pytest.raises(ValueError, match="bool"):
        md(present.float())


# ----------------------------------------------------------------------------- the regressor


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_regressor_shapes(name):
    net = model(name, n_ordinal_levels=5)
    a, m = inputs()
    out = net(a, m, PRESENT)
    assert out["pred"].shape == (4, 19) and out["ordinal"].shape == (4, 19, 4)
    assert out["quality"].shape == (4,) and out["tier"].shape == (4, 4)
    assert out["z_audio"].shape == out["z_midi"].shape == (4, D)
    assert torch.equal(out["present"], PRESENT)
    assert (out["z_audio"][~PRESENT[:, 0]] == 0).all() and (out["z_midi"][~PRESENT[:, 1]] == 0).all()
    assert model(name)(a, m, PRESENT)["ordinal"] is None


@pytest.mark.parametrize("modality", ["audio", "midi"])
def test_single_modality_regressor(modality):
    net = model(modalities=(modality,))
    assert list(net.heads) == [modality] and net.fusion.out_dim == D
    a, m = inputs()
    col = 0 if modality == "audio" else 1
    out = net(a, m, PRESENT)
    assert out["pred"].shape == (4, 19)
    assert torch.equal(out["present"][:, 1 - col], torch.zeros(4, dtype=torch.bool))
    assert torch.equal(out["present"][:, col], PRESENT[:, col])
    # the other input is never looked at, and may be left out
    other = {"audio": a, "midi": m}
    other["midi" if modality == "audio" else "audio"] = None
    torch.testing.assert_close(net(other["audio"], other["midi"], PRESENT)["pred"], out["pred"])
    with pytest.raises(ValueError, match="modalities"):
        model(modalities=("video",))


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_regressor_missing_modality_ignored_and_nan_safe(name):
    net = model(name, n_ordinal_levels=3)
    a, m = inputs()
    ref = net(a, m, PRESENT)
    a2, m2 = a.clone(), m.clone()
    a2[[2, 3]] = float("nan")
    m2[[1, 3]] = float("nan")
    out = net(a2, m2, PRESENT)
    for key in ("pred", "ordinal", "quality", "tier", "z_audio", "z_midi"):
        assert torch.isfinite(out[key]).all(), key
        torch.testing.assert_close(out[key], ref[key])
    # training mode (dropout, modality dropout): gradients stay finite too
    net.train()
    out = net(a2, m2, PRESENT)
    (out["pred"].sum() + out["quality"].sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", sorted(set(FUSIONS) - {"concat"}))
def test_gradient_reaches_fusion(name):
    net = model(name).train()
    a, m = inputs(8)
    net(a, m, torch.ones(8, 2, dtype=torch.bool))["pred"].pow(2).sum().backward()
    for pname, p in net.fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_load_projection_heads():
    src, dst = model(), model()
    torch.nn.init.normal_(src.heads["audio"].fc1.weight)
    dst.load_projection_heads(src.heads.state_dict())
    for k, v in src.heads.state_dict().items():
        torch.testing.assert_close(dst.heads.state_dict()[k], v)
    midi_only = model(modalities=("midi",))
    midi_only.load_projection_heads(src.heads.state_dict())          # audio keys ignored
    with pytest.raises(ValueError, match="midi"):
        midi_only.load_projection_heads({k: v for k, v in src.heads.state_dict().items()
                                         if k.startswith("audio.")})


# ----------------------------------------------------------------------------- staged unfreezing


def trainable(net):
    return {n for n, p in net.named_parameters() if p.requires_grad}


def test_staged_unfreezing():
    net = model("gated", n_ordinal_levels=3)
    everything = {n for n, _ in net.named_parameters()}
    not_heads = {n for n in everything if not n.startswith("heads.")}
    assert any(n.startswith("fusion.") for n in not_heads) and "ordinal.weight" in not_heads

    groups = param_groups(net, 1, lr=1e-3)
    assert trainable(net) == not_heads
    assert [(g["name"], g["lr"]) for g in groups] == [("fusion", 1e-3)]
    assert sum(len(g["params"]) for g in groups) == len(not_heads)

    layers = {1: ["fc2"], 2: ["fc2", "norm"], 3: ["fc2", "norm", "fc1"]}
    for top_k, names in layers.items():
        groups = param_groups(net, 2, lr=1e-3, encoder_lr_factor=0.1, top_k=top_k)
        thawed = {f"heads.{m}.{layer}.{w}" for m in ("audio", "midi") for layer in names
                  for w in ("weight", "bias")}
        assert trainable(net) == not_heads | thawed
        assert [g["name"] for g in groups] == ["fusion", "encoder"]
        assert groups[0]["lr"] == 1e-3 and groups[1]["lr"] == pytest.approx(1e-4)
        ids = {id(p) for p in groups[1]["params"]}
        assert ids == {id(p) for n, p in net.named_parameters() if n in thawed}
    assert trainable(net) == everything                              # top_k=3: whole heads

    # back to stage 1 re-freezes the heads; an optimizer over the groups steps
    groups = param_groups(net, 1, lr=1e-3)
    assert trainable(net) == not_heads
    torch.optim.AdamW(groups)
    with pytest.raises(ValueError, match="stage"):
        param_groups(net, 3, lr=1e-3)
    with pytest.raises(ValueError, match="top_k"):
        param_groups(net, 2, lr=1e-3, top_k=0)
