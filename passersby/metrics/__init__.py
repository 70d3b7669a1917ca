"""Evaluation metrics for generated portraits.

Modules (import them directly; importing this package loads nothing):
    features      EfficientNet-Lite0 (ImageNet) image features, `FeatureExtractor`.
    distances     `kid` and `frechet_distance` on features ("KID/FD in EfficientNet-Lite0
                  feature space", not comparable with published Inception FID/KID).
    memorisation  nearest-neighbour copy detection, `memorisation_report`.
    gender        agreement of an independent gender classifier with requested labels.
    evaluate      `evaluate_generator`: KID, FD and memorisation in one call, with a
                  training-feature cache.
"""
