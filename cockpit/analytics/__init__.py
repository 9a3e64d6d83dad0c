"""Statistical analyses behind the cockpit pages (pure functions, no Dash, no SQL)."""
