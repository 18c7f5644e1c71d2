"""Worker-side ML library (no database, no Celery); import the modules you need, so that
importing this package stays cheap:

- `workers.ml.models`: `load_model(spec, device=..., precision=..., cache_dir=..., seed=...)`,
  `LoadedModel`, `PRESETS`, `resolve_spec`, `WeightsNotFoundError`;
- `workers.ml.data`: `open_any(path or "torchvision:NAME@ROOT", ...)` -> DatasetLayout;
- `workers.ml.embed`: `embed_dataset(...)` -> `EmbedResult`, `load_result(out_dir)`;
- `workers.ml.shards`: `plan_shards(n, num_shards, batch_size)`, `merge_shards(dirs, out)`;
- `workers.ml.synth`: `generate_task(task, out, per_class=..., seed=...)`;
- `workers.ml.finetune`: fine-tuning methods.
"""
