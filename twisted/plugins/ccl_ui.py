from twisted.application.service import ServiceMaker

ccl_ui = ServiceMaker("CCL web UI", "ccl.services.ui", "Web UI of the CCL plant server (port 3000)", "ccl-ui")
