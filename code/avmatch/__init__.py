"""Audio-visual matching with coupled 3D convolutional networks (TensorFlow 2)."""
