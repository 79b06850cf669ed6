"""``python main.py serve [--host H] [--port P] [--token T]``: the model as an OpenAI-compatible endpoint.

The model loads once, in its own supervised process (an ``EngineHost``, as in the window), and
answers ``/v1/chat/completions`` one request at a time. 127.0.0.1 by default; another address
needs a bearer token (``--token generate`` makes one and prints it).
"""

from __future__ import annotations

from .common import EXIT_OK, UsageError, add_model_args, engine_config, load_settings, say


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the model to other apps (OpenAI-compatible, 127.0.0.1 by default)")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=None, help="port (default 8765; 0 = any free port)")
    p.add_argument("--token", help="bearer token clients must send; 'generate' makes one (required when "
                                    "--host is not a loopback address)")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body in MB (default 32)")
    p.add_argument("--quiet", action="store_true", help="no line per request on stderr")
    add_model_args(p, server=False)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..engine.host import EngineHost
    from ..engine.resolve import resolve_model
    from ..serve.gate import EngineGate
    from ..serve.server import DEFAULT_HOST, DEFAULT_PORT, ServeError, Server, new_token

    host = args.host or DEFAULT_HOST
    port = DEFAULT_PORT if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if args.max_body_mb <= 0:
        raise UsageError("--max-body-mb must be above 0")
    if not args.quiet:
        import logging

        logging.getLogger("minutely.serve").setLevel(logging.INFO)  # a line per answered request
    token = new_token() if args.token == "generate" else args.token
    settings = load_settings()
    choice = resolve_model(args.model, args.mmproj, settings)
    host_engine = EngineHost(choice.model, choice.mmproj, engine_config(args, settings))
    gate = EngineGate(host_engine, choice.model)
    try:
        try:
            server = Server(gate, host, port, token, int(args.max_body_mb * 1024 * 1024))
        except ServeError as e:
            raise UsageError(str(e)) from None
        say(f"loading {choice.model.name} ...")
        host_engine.start()
        what = "images and audio" if host_engine.supports_audio and host_engine.supports_vision else \
            "images" if host_engine.supports_vision else "audio" if host_engine.supports_audio else "text only"
        say(f"serving {gate.model_id()} ({what}) at {server.url}")
        if args.token == "generate":
            say(f"bearer token: {token}")
        elif token is not None:
            say("clients must send the bearer token given with --token")
        server.run()
    finally:
        gate.close()
        host_engine.close()
    return EXIT_OK
