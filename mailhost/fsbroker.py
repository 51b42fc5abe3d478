"""The embedded broker: kombu's filesystem transport, with message files that appear whole.

kombu (5.7) creates a message file under its final name and only then writes it, so a
worker polling at that moment takes the empty file, cannot decode it and stops
(JSONDecodeError; bench/smtp_load.py hit it within seconds). Here a message is written
under a name the reader skips, fsynced, then renamed into place: a reader sees all of it
or nothing, and a published task survives a crash. Its exchange table (kombu's
"control folder") defaults to a folder among the messages rather than to `control` in
whatever directory the process runs in (a test run once wrote one into the checkout).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):  # type: ignore[override]  # as kombu's own
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # the reader only takes names ending in ".<queue>.msg"
        with open(partial, "wb") as file:
            file.write(str_to_bytes(dumps(payload)))
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, final)

    @property
    def control_folder(self) -> Path:
        # Among the message files, which the reader tells apart by their ".<queue>.msg".
        folder = self.transport_options.get("control_folder")
        return Path(folder) if folder else Path(self.data_folder_in) / "control"


class Transport(filesystem.Transport):
    Channel = Channel
