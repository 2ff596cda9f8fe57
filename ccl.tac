# twistd -ny ccl.tac: for now runs the MES service alone (the orchestrator will take this over).
from twisted.application import service

from ccl.adapters.mes.tap import service_from_environment

application = service.Application("ccl")
service_from_environment().setServiceParent(application)
