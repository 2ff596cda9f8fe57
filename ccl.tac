# twistd -y ccl.tac: run the CCL plant server (the orchestrator and, as its children, every service).
#
# Settings come from CCL_CONFIG and CCL_* variables (see ccl/data/ccl.ini). The orchestrator
# writes its own log to [paths] logs/orchestrator.log (rotated) whatever --logfile says.
# Run it from the project root: relative paths in the settings are taken from there.
import sys

from twisted.application import service
from twisted.logger import ILogObserver

from ccl.config import ConfigError, load_config
from ccl.orchestrator.app import RotatingLogObserver, make_service, orchestrator_log
from ccl.orchestrator.settings import Settings

try:
    _config = load_config()
    _log = orchestrator_log(Settings.from_config(_config))
    _service = make_service(_config, log_file=_log, attach_log=False)
except ConfigError as _error:
    sys.stderr.write(f"ccl.tac: configuration error: {_error}\n")
    sys.exit(2)

application = service.Application("ccl")
application.setComponent(ILogObserver, RotatingLogObserver(_log))
_service.setServiceParent(application)
