"""The kinds of dependents a refused delete counts (RFC 9457 problem member `dependents`), in
words: shared by the API's 409 detail (`app.deletion`) and the CLI's summary of a cascade, so
both say "1 fine-tuned model, 2 evaluations, 1 active job" alike. A leaf: imports nothing."""

from __future__ import annotations

#: What a kind of dependent is called in a message: (one, several).
NOUNS: dict[str, tuple[str, str]] = {
    "finetuned_models": ("fine-tuned model", "fine-tuned models"),
    "evaluations": ("evaluation", "evaluations"),
    "scores": ("score", "scores"),
    "predictors": ("predictor", "predictors"),
    "embeddings": ("embedding", "embeddings"),
    "active_jobs": ("active job", "active jobs"),
}


def counted(n: int, kind: str) -> str:
    """`n` dependents of `kind` in words: "1 fine-tuned model", "2 fine-tuned models"; a kind
    not listed is its name with spaces."""
    one, several = NOUNS.get(kind, (kind.replace("_", " "), kind.replace("_", " ")))
    return f"{n} {one if n == 1 else several}"
