"""`kubectl heady`: the kubectl plugin (installed as the `kubectl-heady` console script).

args.py parses the command line (pure), views.py turns API bodies into rows and screens (pure),
render.py draws tables and colour (pure), kube.py is the only place that talks to the cluster,
main.py wires them together.
"""
