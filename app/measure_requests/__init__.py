"""`POST /v1/measures`: measures of embeddings the caller already has."""
