"""kombu's filesystem broker (the embedded default), with each message file written atomically.

kombu writes a message straight into the queue folder, and a polling worker may move and read the file before
its content is written: it reads nothing, fails to decode it, and the message is lost (a job that never
runs; seen in the test of a killed worker). Here the message is written under a name no queue matches, then
renamed into place, which is atomic on one filesystem: a worker sees the whole message or none of it.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"  # kombu's own naming and order
        final = os.path.join(self.data_folder_out, name)
        # Starts with a dot: kombu takes what follows the first dot as the queue, and no queue is called this.
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4()}")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
