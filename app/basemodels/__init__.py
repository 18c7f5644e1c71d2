"""Base models: open_clip architectures with their pretrained weights."""
