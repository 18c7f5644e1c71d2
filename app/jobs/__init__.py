"""Jobs: the database row is the truth; the broker only carries "go"."""
