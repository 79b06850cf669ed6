"""``minutely serve``: the one loaded model as an OpenAI-compatible endpoint for other local tools.

``requests`` turns an OpenAI chat-completions body into the engine's messages and options (and
refuses what it cannot answer with an ``ApiError``: status, message, param, code); ``gate`` is where
a request meets the model (a ``ModelGate``: the CLI's own ``EngineHost`` behind one thread, or the
window's model worker); ``app`` is the Starlette application (routes, bearer token, body limit,
SSE streaming, cancel on disconnect); ``server`` binds the socket and runs uvicorn. No Qt here:
the window's gate lives in app/ui.
"""
