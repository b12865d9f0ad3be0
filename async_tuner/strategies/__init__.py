"""The search strategies; import them from ``async_tuner``."""
