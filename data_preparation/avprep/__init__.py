"""Input pipeline from raw talking-face videos: decoding, mouth tracking, speech features,
windows and genuine/impostor pairs, dataset writing, demo data."""
