"""Credit-easy loans for small firms: the loans programme's nouns."""
