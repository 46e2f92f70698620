"""Reliability tools: `verify` (eager vs compiled, the first diverging IR node) and `detect_anomaly`
(the first op producing NaN/inf).

    report = graphc.verify(step, x, y); print(report)
    with graphc.detect_anomaly(): step(x, y)
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from .verify import Check, Divergence, VerifyReport, verify  # noqa: F401

__all__ = ["verify", "VerifyReport", "Check", "Divergence", "detect_anomaly", "set_detect_anomaly",
           "is_anomaly_enabled", "AnomalyError"]
