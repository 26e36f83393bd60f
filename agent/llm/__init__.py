"""LLM access behind one ChatBackend protocol: the openai and litellm adapters over one
shared wire module and one pricing module, retries and rate limits, the factory, scripted,
simulated and replay backends, and the OpenAI-compatible test server.
"""
