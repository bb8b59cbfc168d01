"""Partner sandbox: local simulators of real partner APIs, for tests and demos.

Each simulator follows its partner's fact sheet (``shared/partners/<partner>.md``): auth,
paths, field names, pagination, error bodies, rate-limit headers, and the sheet's "plausible
design" where a detail is unconfirmed (each module's docstring lists those). Every simulator
can inject faults on demand (``faults.py``). Start them with ``Sandbox`` (tests) or
``python -m integration_pipelines.sandbox`` / ``integration-pipelines sandbox`` (``run_forever``).
The VMS simulators (Beeline, SAP Fieldglass) are bi-directional: they push events to a
subscriber (``webhooks.py``), take submissions and placement updates, and can be edited
"buyer-side" by tests.
"""

from integration_pipelines.sandbox.beeline import BeelineSimulator
from integration_pipelines.sandbox.cv_documents import corrupt_document, render_cv
from integration_pipelines.sandbox.cv_text_parser import ParsedCV, UnreadableDocument, parse_cv
from integration_pipelines.sandbox.data import generate_candidates
from integration_pipelines.sandbox.daxtra import DaxtraSimulator
from integration_pipelines.sandbox.faults import FAULT_KINDS, Fault, FaultInjector
from integration_pipelines.sandbox.sap_fieldglass import SapFieldglassSimulator
from integration_pipelines.sandbox.server import PARTNERS, SIMULATOR_CLASSES, Sandbox, run_forever
from integration_pipelines.sandbox.simulator import Simulator, SimulatorStats
from integration_pipelines.sandbox.textkernel import TextkernelSimulator
from integration_pipelines.sandbox.webhooks import WebhookSender

__all__ = [
    "FAULT_KINDS",
    "PARTNERS",
    "SIMULATOR_CLASSES",
    "BeelineSimulator",
    "DaxtraSimulator",
    "Fault",
    "FaultInjector",
    "ParsedCV",
    "Sandbox",
    "SapFieldglassSimulator",
    "Simulator",
    "SimulatorStats",
    "TextkernelSimulator",
    "UnreadableDocument",
    "WebhookSender",
    "corrupt_document",
    "generate_candidates",
    "parse_cv",
    "render_cv",
    "run_forever",
]
