"""The streaming engine: answers generated on the event loop and followed by readers.

- `generation`: the task that reads the model and writes the answer (checkpoints, one final
  write); `control`: stop requests, in this process or any other; `recovery`: answers a dead
  process left live.
- `hub`: the in-process buffers and the ticker that wakes readers once per frame;
  `redis_relay`: the same buffers mirrored across processes through Redis.
- `reading`: a live answer (or its saved state) as resumable SSE events; `sse`: the frames;
  `access`: signed stream URLs; `fast_path`: the ASGI app that serves them without Django.
- `layer`: bounded sends on the Channels layer.

Writes that are not streaming (sending, moderation, export...) live in `services/`; the
engine imports nothing from there.
"""
