"""The sync core: extraction page by page, idempotent loading, resumable state."""
