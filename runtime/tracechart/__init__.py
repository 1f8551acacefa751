"""`paxos trace`: message sequence charts drawn from trace events (issue 14).

The pieces, each pure except `files`:
- `model`: trace events (the trace contract's dicts) checked, sends joined to receives, rows;
- `select`: --slot, --op, --since/--until, and why a selection found nothing;
- `text`, `svg`, `shiviz`: the renderers (terminal, SVG file, ShiViz log with vector clocks);
- `transcript`: a scenario transcript's deliveries as trace events, so scenarios draw charts too;
- `files`: the trace files of a data directory, read without locks and never written.
"""
