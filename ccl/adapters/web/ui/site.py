"""The UI's twisted.web Site: requests whose bodies are size-limited before they are read."""

from __future__ import annotations

import json

from twisted.web import server

from ccl.adapters.web.errors import error_body

#: Bodies larger than this are refused before they are read (forms and JSON are small).
MAX_BODY = 1024 * 1024


class _Request(server.Request):
    def gotLength(self, length):  # noqa: N802 (twisted's name)
        if length is not None and length > MAX_BODY:
            channel = self.channel
            self.clientproto = b"HTTP/1.1"  # the request line is not parsed yet at this point
            self.setResponseCode(413)
            self.setHeader(b"connection", b"close")
            self.setHeader(b"content-type", b"application/json")
            self.write(json.dumps(error_body("request body too large", "at most 1 MiB")).encode())
            self.finish()
            channel.loseConnection()
            return
        super().gotLength(length)


def site(ui) -> server.Site:
    factory = server.Site(ui.resource())
    factory.requestFactory = _Request
    return factory
