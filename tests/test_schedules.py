import math

import pytest

from ssps_trainers.schedules import constant, cosine_momentum, dino_paper_lr, step_decay


def test_step_decay_absolute_epochs() -> None:
    spe = 4265
    assert 1e-3 * step_decay(100 * spe, spe) == pytest.approx(3.58e-4, rel=2e-3)  # docs/method.md §11.2
    assert 1e-3 * step_decay(119 * spe, spe) == pytest.approx(3.07e-4, rel=2e-3)
    assert step_decay(5 * spe - 1, spe) == 1.0 and step_decay(5 * spe, spe) == 0.95


def test_dino_paper_time_lr() -> None:
    spe = 8531
    assert dino_paper_lr(0, spe) == 0.0
    assert dino_paper_lr(10 * spe, spe) == pytest.approx(0.2)
    assert dino_paper_lr(80 * spe, spe) == pytest.approx(0.041, abs=5e-4)
    assert dino_paper_lr(100 * spe, spe) == pytest.approx(0.0049, abs=1e-4)


def test_momentum_schedules() -> None:
    assert constant(123, 0.999) == 0.999
    assert cosine_momentum(0, 100) == pytest.approx(0.996)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    assert cosine_momentum(50, 100) == pytest.approx(0.998)
    assert math.isclose(cosine_momentum(500, 100), 1.0)
