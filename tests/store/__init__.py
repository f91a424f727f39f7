"""The store: queries on every database, the schema, old databases."""
