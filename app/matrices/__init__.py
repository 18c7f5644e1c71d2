"""The accuracy matrix of fine-tuned models: learning (gain) and forgetting (ood change)."""
