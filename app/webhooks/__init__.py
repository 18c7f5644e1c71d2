"""Webhooks: endpoints a project registers, and job events delivered to them (signed as the
Standard Webhooks specification says, at least once, retried with backoff)."""
