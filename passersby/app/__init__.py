"""The application layer: settings + model -> a running installation, and the commands that
start it (show, serve, render, config, ledger). Below it: the stream core (passersby.stream:
frames, sources, walker, ledger, engine), which knows no model and no web page; beside it, the
sinks (passersby.web, passersby.outputs), which see only frames."""
