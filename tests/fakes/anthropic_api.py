"""The fake Anthropic reporting APIs live in :mod:`cclens.synth.anthropic_api` (``cclens demo`` serves
them too); re-exported here for the tests. Runnable as before: ``python tests/fakes/anthropic_api.py``."""

import sys

from cclens.synth.anthropic_api import *  # noqa: F401,F403
from cclens.synth.anthropic_api import EXTRA_TOOL, FakeAnthropicAPI, LoopbackServer, main, serve_asgi  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
