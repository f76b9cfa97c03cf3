"""One module per chapter: what the chapter shows, computed from stored results (see ARCHITECTURE.md)."""
