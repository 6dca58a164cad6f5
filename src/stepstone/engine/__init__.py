"""The engine: workers that claim runs, execute them and persist their ops."""
