"""ddbrepl's own state in PostgreSQL (schema `ddbrepl`). Functions take a connection and never commit."""
