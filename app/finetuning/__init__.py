"""Fine-tuning jobs, fine-tuned model records and their evaluations (issue 5)."""
