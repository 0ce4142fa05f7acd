"""HTTP surface: app assembly, the client dialects (OpenAI, Anthropic), admin."""
