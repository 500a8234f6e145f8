"""`meta ui`: a read-only web page of local runs, kept live with server-sent events.

`structure` places unit instances in the flow's structure, `model` keeps one run's state by
tailing its journal, `server` serves the page, its JSON and the event stream (aiohttp), and
`static/` is the page (cytoscape with dagre, vendored, for the graph).
"""
