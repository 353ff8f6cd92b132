"""Queues: SQS semantics over the store, and the SQS-compatible endpoint."""
