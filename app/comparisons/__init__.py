"""Which measure predicts fine-tuning best (comparisons) and which model to pick (rankings)."""
