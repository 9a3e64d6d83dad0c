"""KPI queries: (connection, Filters) -> small DataFrame, aggregated in DuckDB."""
