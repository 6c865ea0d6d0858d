"""The test services behind request identity: the SDK answers 401 to requests not signed by the
key whose public string is in ``QUILL_TEST_IDENTITY_KEY``."""

from __future__ import annotations

import os

import restate

from tests.services.app import greeter
from tests.services.objects import counter

app = restate.app(services=[greeter, counter], identity_keys=[os.environ["QUILL_TEST_IDENTITY_KEY"]])
