"""Evaluation: feature networks trained on the data itself, sample metrics with their real-vs-real
floor, reconstruction and likelihood metrics, all registered in ``genlab.registry.METRICS``."""

from ..nn.features import FeatureExtractor, FeatureSet, clear_memo, feature_extractor, real_features
from . import codes, modes  # noqa: F401  (register the InfoGAN and toy 2-D metrics)
from .evaluate import Metric, evaluate, format_table, model_sampler, sample_metrics
from .metrics import (
    density_coverage,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    inception_score,
    kernel_inception_distance,
    precision_recall,
    psnr,
)

__all__ = [
    "FeatureExtractor", "FeatureSet", "Metric", "clear_memo", "density_coverage", "evaluate",
    "feature_extractor", "format_table", "frechet_distance", "frechet_distance_from_stats",
    "gaussian_stats", "inception_score", "kernel_inception_distance", "model_sampler",
    "precision_recall", "psnr", "real_features", "sample_metrics",
]
