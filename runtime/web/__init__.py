"""The live page of a running cluster in a browser (issue 15): `paxos web`, `paxos up --web`.

- `auth`: the access token (`<data_dir>/web.token`, 0600) and the checks every request passes
  (origin, token, body size), with rate-limited refusal logging;
- `view`: the page's state, a pure function of the supervisor's status (the same status that
  `paxos status` and `paxos status --watch` read, through runtime/watch.py's functions);
- `info`: `<data_dir>/run/web.json`, where a running server listens (for the CLI, without aiohttp);
- `server`: the aiohttp application on uvloop: the page and its assets, the JSON API that kills,
  pauses, resumes and restarts actors through the supervisor's control socket (the paths `paxos
  kill` and `paxos restart` take), cuts and heals links in test mode (`paxos faults`), a put/get
  through the project's client, and `/events`, the server-sent event stream of the view
  (aggregated: a few updates a second whatever the load);
- `faultctl`: crash points by click (`paxos kill --at`), a link's delay and drop rate (`paxos
  faults`, test mode), and the cards' crash, member, snapshot and compaction fields;
- `static/`: the page itself, plain HTML, CSS and JavaScript modules with SVG; no build step.
"""
