"""Evaluation metrics for generated portraits.

Modules (import them directly; importing this package loads nothing):
    features          EfficientNet-Lite0 (ImageNet) image features, `FeatureExtractor`.
    distances         `kid` and `frechet_distance` on features ("KID/FD in EfficientNet-Lite0
                      feature space", not comparable with published Inception FID/KID).
    precision_recall  k-NN manifold precision and recall (Kynkäänniemi et al. 2019, k=3), with
                      the two-halves-of-real reference.
    memorisation      nearest-neighbour copy detection, `memorisation_report`, `closest_pairs`.
    faces             the metrics' face detector (dlib HOG, one fixed setting for real and fake),
                      face rate.
    face_descriptor   dlib's 128-d face descriptors of detected faces: a feature space no
                      discriminator sees.
    gender            an independent gender classifier: agreement with requested labels, and
                      flip-averaged P(male) (never to be used for training or fitting).
    screens           per-screen face rate, P(male | screen), P(female | screen), separation.
    reference         the real images to measure against (prepared dataset or plain folder).
    quality           `measure_quality`: every figure of generated vs real faces in one call.
    sheets            contact sheets and closest-pair pictures (JPEG).
    evaluate          `evaluate_generator`: KID, FD and memorisation in one call, with a
                      training-feature cache (used during training).
"""
