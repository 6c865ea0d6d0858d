"""Flow control: scope and limit-key names, rule patterns and their precedence, the rule book."""
