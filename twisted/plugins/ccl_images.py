from twisted.application.service import ServiceMaker

ccl_images = ServiceMaker("ccl-images", "ccl.services.images",
                          "Image pairs from the Jetson boxes (port 8081)", "ccl-images")
