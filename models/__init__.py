"""The nouns: database tables, the partner contract's shapes, and money."""
