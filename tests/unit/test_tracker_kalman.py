"""The batched constant-velocity Kalman filter used by the tracker."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.perception import kalman

NOISE = kalman.KalmanNoise()


def test_box_conversions_round_trip() -> None:
    xyxy = np.array([[10, 20, 50, 100], [0, 0, 1, 1]], dtype=np.float64)
    np.testing.assert_allclose(kalman.cxcywh_to_xyxy(kalman.xyxy_to_cxcywh(xyxy)), xyxy)


def test_predict_scales_motion_by_dt_and_grows_uncertainty() -> None:
    means, covs = kalman.initiate(np.array([[100.0, 100.0, 40.0, 40.0]]), NOISE)
    means = means.copy()
    means[0, 4:6] = [150.0, -50.0]  # px per second
    one_step, cov_one = kalman.predict(means, covs, 1.0, NOISE)
    two_halves, _ = kalman.predict(*kalman.predict(means, covs, 0.5, NOISE), 0.5, NOISE)
    np.testing.assert_allclose(one_step[0, :2], [250.0, 50.0])
    np.testing.assert_allclose(two_halves[0, :4], one_step[0, :4])
    assert np.all(np.diag(cov_one[0]) > np.diag(covs[0]))
    np.testing.assert_array_equal(means[0, :2], [100.0, 100.0])  # input untouched


def test_update_learns_velocity_from_measurements() -> None:
    means, covs = kalman.initiate(np.array([[0.0, 0.0, 40.0, 40.0]]), NOISE)
    for k in range(1, 30):
        t = k * 0.1
        means, covs = kalman.predict(means, covs, 0.1, NOISE)
        means, covs = kalman.update(means, covs, np.array([[200.0 * t, 0.0, 40.0, 40.0]]), NOISE)
    assert means[0, 4] == pytest.approx(200.0, rel=0.05)
    assert means[0, 0] == pytest.approx(200.0 * 2.9, abs=2.0)
    np.testing.assert_allclose(covs[0], covs[0].T)


def test_predict_rejects_negative_dt() -> None:
    means, covs = kalman.initiate(np.array([[0.0, 0.0, 4.0, 4.0]]), NOISE)
    with pytest.raises(ValueError, match="dt"):
        kalman.predict(means, covs, -0.1, NOISE)


def test_update_needs_one_measurement_per_state() -> None:
    means, covs = kalman.initiate(np.array([[0.0, 0.0, 4.0, 4.0]]), NOISE)
    with pytest.raises(ValueError, match="measurements"):
        kalman.update(means, covs, np.zeros((2, 4)), NOISE)
