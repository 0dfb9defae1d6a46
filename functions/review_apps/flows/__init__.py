"""Flows: carry a lifecycle decision out through the adapters. Each has the same shape (read the
MR's record → a pure decision → conditional write → side effects → tell the MR) and returns a
typed Outcome; only the webhook handler turns one into HTTP."""
