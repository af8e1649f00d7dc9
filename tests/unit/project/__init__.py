"""The project's own files: the docs (every command run, every example loaded, the site built), the deploy files, the dependency pins, the shipped mappings."""
