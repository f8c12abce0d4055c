"""selftaught: train self-taught LLM judges on Kubernetes."""
