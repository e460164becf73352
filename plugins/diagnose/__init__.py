"""Root-cause diagnosis: node evidence -> rules -> findings -> correlation with failed paths."""
