"""edgedistal: distil deepfake-detection datasets with active learning, ship detectors to edge GPUs."""

__version__ = "0.1.0"
