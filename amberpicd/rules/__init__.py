"""Which rules apply to a file: pure functions of the config and the file's Facts."""
