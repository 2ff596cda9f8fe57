from twisted.application.service import ServiceMaker

ccl_mes = ServiceMaker("ccl-mes", "ccl.services.mes", "CCL MES telegram service (port 9304): journal, PostgreSQL, status", "ccl-mes")
