from twisted.application.service import ServiceMaker

ccl_orchestrator = ServiceMaker(
    "CCL orchestrator", "ccl.orchestrator.plugin",
    "starts, watches and controls every CCL service (control API on port 9000)", "ccl-orchestrator")
