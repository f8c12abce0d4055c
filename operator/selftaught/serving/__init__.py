"""Serving a trained judge: an OpenAI-compatible chat endpoint on a run's best model.

``protocol`` is the pure part (requests in, response bodies out); ``app`` is the aiohttp shell
around an :class:`~selftaught.engines.base.Engine`; ``local`` finds a local run's best model.
"""
