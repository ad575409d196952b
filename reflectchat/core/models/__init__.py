"""Model files: catalog, naming, GGUF headers, fit planning, HF cache, downloads, discovery."""
