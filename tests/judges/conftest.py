"""The judge tests use the ``server`` fixture of tests/conftest.py: tests/judges/openai_server.py as a
real local OpenAI-compatible server in a subprocess."""
