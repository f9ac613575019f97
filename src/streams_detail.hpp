// Internal: the stream ends of a child process's pipes (src/streams.cpp, used by
// src/subprocess.cpp).
#pragma once

#include <cstddef>
#include <functional>

#include "asyncio/streams.hpp"

namespace asyncio::detail {

/// A StreamReader fed by the read end of a pipe `fd` (taken over; closed here if this throws)
/// until its end. `on_lost` runs once its transport has closed (Python:
/// SubprocessStreamProtocol.pipe_connection_lost).
StreamReader read_pipe_stream(EventLoop& loop, int fd, std::size_t limit,
                              std::function<void()> on_lost);
/// A StreamWriter over the write end of a pipe `fd` (taken over): write_eof() and close() close
/// it; it closes by itself once the reading end is gone. `on_lost` as above.
StreamWriter write_pipe_stream(EventLoop& loop, int fd, std::function<void()> on_lost);

}  // namespace asyncio::detail
