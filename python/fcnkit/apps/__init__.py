"""What people run on finished models: background removal (`remove-bg`), the end-to-end demo."""
