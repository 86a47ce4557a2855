import pytest
import torch

from moola_lib.pretraining.checkpoints import encoder_state, load_encoder, save_encoder
from moola_lib.pretraining.masking import random_mask
from moola_lib.pretraining.model import JadeClassifier, JadeEncoder, JadePretrainer
from moola_lib.util.io import atomic_torch_save

SMALL = dict(input_size=10, hidden_size=8, num_layers=2, dropout=0.2)


def test_shapes_and_arch():
    torch.manual_seed(0)
    enc = JadeEncoder(**SMALL)
    assert enc.arch == SMALL and enc.output_size == 16
    x = torch.randn(3, 105, 10)
    assert enc(x).shape == (3, 105, 16)
    pre = JadePretrainer(**SMALL)
    assert pre.mask_token.shape == (10,) and pre.head.in_features == 16 and pre.head.out_features == 10
    assert pre(x, torch.zeros(3, 105, dtype=torch.bool)).shape == (3, 105, 10)
    clf = JadeClassifier(n_classes=3, **SMALL)
    assert clf(x).shape == (3, 3) and clf.embed(x).shape == (3, 16)
    with pytest.raises(TypeError):
        JadePretrainer(enc, hidden_size=8)


def test_masked_inputs_are_hidden_from_the_encoder():
    torch.manual_seed(0)
    model = JadePretrainer(**SMALL).eval()
    x = torch.randn(4, 105, 10)
    mask = random_mask(torch.ones(4, 105, dtype=torch.bool), generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[mask] = torch.randn(int(mask.sum()), 10) * 100
    changed[0, mask[0]] = float("nan")
    with torch.no_grad():
        assert model(x, mask).equal(model(changed, mask))
        # sanity: the same change at unmasked positions does change the output
        visible = x.clone()
        visible[~mask] += 1.0
        assert not model(x, mask).equal(model(visible, mask))


def test_classifier_pools_over_valid_steps_only():
    torch.manual_seed(0)
    clf = JadeClassifier(**SMALL).eval()
    x = torch.randn(2, 105, 10)
    valid = torch.ones(2, 105, dtype=torch.bool)
    valid[:, :20] = False
    h = clf.encoder(x)
    expected = h[:, 20:].mean(1)
    assert torch.allclose(clf.embed(x, valid), expected, atol=1e-6)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = JadeEncoder(**SMALL).eval()
    path = tmp_path / "enc.pt"
    save_encoder(enc, path, epoch=3, note="test")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "moola.jade_encoder.v1" and raw["metadata"] == {"epoch": 3, "note": "test"}
    loaded = load_encoder(path, hidden_size=8).eval()
    x = torch.randn(2, 105, 10)
    with torch.no_grad():
        assert enc(x).equal(loaded(x))
    assert loaded.arch == SMALL


def test_load_from_a_training_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = JadePretrainer(**SMALL)
    path = tmp_path / "checkpoint_last.pt"
    atomic_torch_save(
        {
            "format": "moola.pretrain_checkpoint.v1",
            "encoder": encoder_state(model.encoder),
            "model": model.state_dict(),
            "config": {"hidden_size": 8},
        },
        path,
    )
    loaded = load_encoder(path, hidden_size=None).eval()
    x = torch.randn(2, 105, 10)
    with torch.no_grad():
        assert model.encoder.eval()(x).equal(loaded(x))


@pytest.mark.parametrize(
    "arch, required, pattern",
    [
        (dict(input_size=11), {}, r"input_size=11 \(lstm\.weight_ih_l0 \[32, 11\]\) but 10 was required"),
        (dict(hidden_size=16), dict(hidden_size=8), r"hidden_size=16 \(lstm\.weight_hh_l0 \[64, 16\]\) but 8"),
        (dict(num_layers=3), {}, r"num_layers=3 \(3 layers.*\) but 2 was required"),
    ],
)
def test_architecture_mismatch_names_both_shapes(tmp_path, arch, required, pattern):
    path = tmp_path / "enc.pt"
    save_encoder(JadeEncoder(**{**SMALL, **arch}), path)
    with pytest.raises(ValueError, match=pattern) as e:
        load_encoder(path, **{"hidden_size": 8, **required})
    assert str(path) in str(e.value)


def test_load_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "moola.jade_encoder.v1", "payload": Evil()}, path)
    with pytest.raises(ValueError, match="would run code"):
        load_encoder(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a moola encoder file"):
        load_encoder(other)


def test_classifier_normalises_pooled_features_with_a_saved_layer():
    torch.manual_seed(0)
    clf = JadeClassifier(**SMALL)
    x = torch.randn(64, 105, 10)
    clf.train()
    clf(x)  # one training pass updates the layer's running statistics
    assert "norm.running_mean" in clf.state_dict() and clf.norm.num_batches_tracked == 1
    clf.eval()
    with torch.no_grad():
        pooled = clf.embed(x)
        z = clf.norm(pooled)
    expected = (pooled - clf.norm.running_mean) / torch.sqrt(clf.norm.running_var + clf.norm.eps)
    assert torch.allclose(z, expected * clf.norm.weight + clf.norm.bias, atol=1e-5)
    copy_ = JadeClassifier(**SMALL)
    copy_.load_state_dict(clf.state_dict())
    copy_.eval()
    with torch.no_grad():
        assert torch.equal(copy_(x), clf(x))
