"""``twistd ccl-mes``: the MES telegram service (see ccl/adapters/mes/service.py).

All settings come from the configuration (CCL_CONFIG and CCL_* variables); a wrong one
stops start-up with a message naming it, never a traceback.
"""

from __future__ import annotations

from twisted.python import usage

from ccl.adapters.storage.localdb import resolve_dsn
from ccl.config import ConfigError, load_config
from ccl.domain.telegrams import LayoutError, load_layouts


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Receive MES telegrams on [mes] listen, journal them (fsync) before the ACK, apply "
                "them to PostgreSQL in order, serve /health and /metrics on [mes] status_listen. "
                "Settings: CCL_CONFIG and CCL_<SECTION>_<KEY> variables (see ccl/data/ccl.ini).")

    def postOptions(self):  # noqa: N802 (Twisted's name)
        from ccl.adapters.gokiwon.service import GokiwonSettings
        from ccl.adapters.mes.service import MesSettings

        try:
            config = load_config()
            self["settings"] = MesSettings.from_config(config, resolve_dsn(config))
            self["layouts"] = load_layouts(self["settings"].layout_path)
            self["gokiwon"] = GokiwonSettings.from_config(config, self["layouts"])
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None
        except LayoutError as error:
            raise usage.UsageError(f"[mes] layout: {error}") from None


def makeService(options):  # noqa: N802
    from twisted.internet import reactor

    from ccl.adapters.gokiwon.service import attach_forwarding
    from ccl.adapters.mes.service import MesService

    mes = MesService(reactor, options["settings"], options["layouts"])
    attach_forwarding(mes, options["gokiwon"])  # forwarding to 고기원 (issue 3), a child service
    return mes

