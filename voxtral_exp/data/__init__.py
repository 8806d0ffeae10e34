"""Speech data: audio decoding, manifests and data sources, featurisation for Voxtral."""
