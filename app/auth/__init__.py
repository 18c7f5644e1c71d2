"""API keys scoped to projects."""
