"""``kubectl selftaught``: the kubectl plugin (console script ``kubectl-selftaught``).

``requests`` decides (pure: a run in, a patch, a label selector or a table row out);
``kube`` is the only module that talks to the API server; ``main`` parses and prints.
"""
