"""pianoeval.training: early stopping."""
import pytest
import torch

from pianoeval.training import EarlyStopping


def test_early_stopping_keeps_the_best_epochs_weights_and_stops_after_patience():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    weights = {}
    for epoch, loss in enumerate([3.0, 2.0, 1.95, 2.5]):  # 1.95 is within min_delta of 2.0
        with torch.no_grad():
            model.weight.fill_(epoch)
        weights[epoch] = model.weight.clone()
        stop = stopper.update(epoch, loss, model)
        assert stop == (epoch == 3)
    assert stopper.best_epoch == 1 and stopper.best == 2.0
    stopper.restore(model)
    assert torch.equal(model.weight, weights[1])


def test_early_stopping_refuses_a_bad_patience_and_a_restore_before_any_epoch():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(RuntimeError, match="no epoch"):
        EarlyStopping(patience=1).restore(torch.nn.Linear(1, 1))



def test_early_stopping_keeps_the_first_epoch_recorded_whatever_its_loss():
    model = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2, min_delta=1e-5)
    assert not stopper.update(0, float("inf"), model)  # a starting point
    assert stopper.best_epoch == 0
    assert not stopper.update(1, float("nan"), model)  # NaN never improves
    assert stopper.update(2, float("nan"), model) and stopper.best_epoch == 0
    assert not EarlyStopping(patience=1).update(0, float("nan"), model)
