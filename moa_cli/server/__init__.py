"""`moa serve`: any mix as an OpenAI-compatible HTTP endpoint (extra: moa-cli[serve]).

    protocol.py  the OpenAI wire shapes: request checking, errors, completions and chunks
    catalog.py   which model ids the server offers, and the Settings each one runs
    stream.py    one turn's engine events -> server-sent events, as they happen
    app.py       the Starlette app: routes, auth, body limit, access log, client disconnects
    run.py       binding the socket, uvicorn, SIGTERM drain

Every request runs its turn through `moa_cli.service.TurnService`, on one provider pool shared
by every request of the process. The server keeps no state between requests.
"""
