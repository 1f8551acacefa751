"""Everything that touches the world: config, codec, append-only files, ZeroMQ transport,
logging, the actor process shell, the supervisor, the client and the CLI."""
