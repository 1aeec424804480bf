"""The local serving gateway: real models behind HTTP, weighted routing, shadow capture.

Import from the modules (this package imports nothing, so the serving adapter
stays cheap to load for commands that never serve):

- `core.gateway.app.create_app(home, options)`: the Starlette app over `<home>/serving.db`
- `core.gateway.server.GatewayServer(app, port).start()`: uvicorn on 127.0.0.1 in a thread;
  `.run()` in the foreground until SIGINT/SIGTERM; `serve(home, port)`
- `core.gateway.client.invoke(base_url, endpoint, data)`: one request (`mmm invoke`)
- `python -m core.gateway --home DIR --port PORT`: the gateway alone
"""
