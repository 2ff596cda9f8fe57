"""``twistd -n ccl-orchestrator``: the orchestrator as a twistd plugin (``ccl.tac`` is the usual way)."""

from __future__ import annotations

from twisted.python import usage

from ccl.config import ConfigError, load_config


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Start, watch and control every CCL service as a child process, with the control API on"
                " [orchestrator] listen. Settings come from CCL_CONFIG and CCL_* variables.")

    def postOptions(self):  # noqa: N802
        try:
            self["config"] = load_config()
            from ccl.orchestrator.services import children
            from ccl.orchestrator.settings import Settings

            Settings.from_config(self["config"])
            children(self["config"])
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


def makeService(options):  # noqa: N802 (twistd's name)
    from ccl.orchestrator.app import make_service

    return make_service(options["config"])
