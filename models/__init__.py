"""torch + PyTorch Geometric networks: featurisation, graph encoder, policy heads, log Z head."""
