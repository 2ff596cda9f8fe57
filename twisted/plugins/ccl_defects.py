from twisted.application.service import ServiceMaker

ccl_defects = ServiceMaker("ccl-defects", "ccl.services.defects",
                           "AI defect results from the Jetson boxes (port 8082)", "ccl-defects")
