"""The long-running daemon: watcher → queue → workers → engine → journal."""
