"""The tray icon: ``menu`` (what it shows, pure), ``icons`` (Pillow drawing), ``app`` (pystray)."""
