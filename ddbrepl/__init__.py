"""ddbrepl: replicate Amazon DynamoDB tables into PostgreSQL, declaratively."""

__version__ = "0.1.0"
