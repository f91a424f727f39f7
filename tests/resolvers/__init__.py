"""The resolvers through the HTTP edge, diagnose, the lookup cache."""
