"""`reflectchat eval`: generated test suites with exact answers, answer checking, the run over
models × conditions × suites, and the statistics reported (pure Python, no front end)."""
