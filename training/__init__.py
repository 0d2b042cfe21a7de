"""Data for and training of the encoder: the synthetic cohort, datasets, metric learning, evaluation."""
