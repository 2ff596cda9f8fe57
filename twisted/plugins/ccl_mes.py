from twisted.application.service import ServiceMaker

ccl_mes = ServiceMaker("ccl-mes", "ccl.adapters.mes.tap", "CCL MES telegram service (port 9304): journal, PostgreSQL, status", "ccl-mes")
