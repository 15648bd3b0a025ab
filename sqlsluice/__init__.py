"""sqlsluice: PostgreSQL-wire middleware that answers questions with SQL and serves
verified faster rewrites."""

from sqlsluice.sdk import Client, Rows, connect

__all__ = ["Client", "Rows", "connect"]
__version__ = "0.1.0"
