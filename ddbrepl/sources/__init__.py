"""Sources read DynamoDB and yield data plus positions; they never store positions and never decode items.

``aws`` makes every boto3 client; ``scan``, ``stream`` and ``shards`` read tables and streams.
"""
